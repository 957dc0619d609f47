"""`ghostwrite repl [MODEL]`: write a story with a model in the terminal.

Story mode (the default): each prompt is added to a running story and the model continues the whole
story (its last 4,000 characters, what the model can use). Everything goes through the continuation
service, so every continuation is stored (source "repl"), interrupted ones included.

On a terminal: prompt_toolkit line editing with history in `<data dir>/repl_history`, Alt+Enter or a
\"\"\" block for several lines, the model's text streamed in colour, slash commands (/help). Ctrl+C stops a
generation (the part written stays in the story and is stored as interrupted) or clears the line;
Ctrl+D or /quit leaves.

Piped (stdin not a terminal): one prompt per line in, one continuation per line out, no prompts and no
colours. Inside a continuation, a newline is written as the two characters `\\n`, a carriage return as
`\\r` and a backslash as `\\\\` (`bot.repl.story.unescape_line` reverses it). An empty line continues the
story; lines starting with / are commands, whose messages go to standard error. Exit code 0 at the end
of input (130 when interrupted).
"""

from __future__ import annotations

import getpass
import logging
import sys
from typing import Optional

import typer

__all__ = ["repl_command", "run_repl"]


def _log_to_file(path) -> None:
    """REPL warnings and bug reports go to a file, not over the writer's screen."""
    logger = logging.getLogger("ghostwrite")
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def run_repl(model: str | None = None, mode: str = "story", stdin=None, stdout=None,
             interactive: bool | None = None) -> int:
    from rich.console import Console

    from bot.repl.session import MODES, ReplSession
    from bot.repl.terminal import TerminalInput, interactive_loop, piped_loop
    from bot.service import ContinuationService, GhostwriteError, home

    if stdin is None and hasattr(sys.stdin, "reconfigure"):
        # bytes that are not UTF-8 reach the service's door (clean_text) instead of ending the loop
        sys.stdin.reconfigure(errors="surrogateescape")
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    if mode not in MODES:
        raise GhostwriteError(f"--mode must be story or single, got {mode!r}")
    if interactive is None:
        interactive = stdin.isatty()
    data = home()
    _log_to_file(data / "repl.log")
    svc = ContinuationService(default_model=model)
    name, version = svc.resolve(model)  # an unknown model ends here, with its one-line error
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is fine
        user = None
    if interactive:
        console = Console(highlight=False)
        session = ReplSession(svc, console, model=model or name, mode=mode, interactive=True, user_name=user)
        console.print(f"ghostwrite · {name}@v{version} · {mode} mode · /help for commands, Ctrl+D to leave",
                      style="dim", highlight=False, markup=False)
        code = interactive_loop(session, TerminalInput(session, data / "repl_history"))
    else:
        console = Console(file=sys.stderr, color_system=None, force_terminal=False, highlight=False,
                          soft_wrap=True)
        session = ReplSession(svc, console, model=model or name, mode=mode, interactive=False, out=stdout,
                              user_name=user)
        code = piped_loop(session, stdin)
    running = svc.current_job()
    if running is not None:
        console.print(f"cancelling training run {running}", style="dim", markup=False)
        svc.stop_jobs()
    return code


def repl_command(
    model: Optional[str] = typer.Argument(None, help="NAME or NAME@vN (default: the newest model)."),
    mode: str = typer.Option("story", "--mode", help="story: each prompt adds to the story; "
                             "single: each prompt stands alone."),
):
    """Write with a model: each prompt adds to a story the model continues. Piped input: one prompt per
    line in, one continuation per line out (newlines as \\n)."""
    code = run_repl(model, mode)
    if code:
        raise typer.Exit(code)
