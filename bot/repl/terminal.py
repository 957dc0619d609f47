"""The two ways in: an interactive terminal (prompt_toolkit) and a pipe (one prompt per line)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import IO

from bot.repl.commands import COMMANDS, handle
from bot.repl.session import ReplSession
from bot.service import GhostwriteError

log = logging.getLogger("ghostwrite.repl")
BLOCK = '"""'


class _NoHistory(Exception):
    """No history file: the service stores metadata only."""


# ---- interactive --------------------------------------------------------------------------------------
class TerminalInput:
    """prompt_toolkit line editing: history in the data directory, Alt+Enter for a new line, a \"\"\"
    block for several lines, Tab completion of commands, settings and model names."""

    def __init__(self, session: ReplSession, history_path):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings

        self.session = session
        session.quiet_input = self.no_echo
        kb = KeyBindings()

        @kb.add("escape", "enter")
        def _newline(event):
            event.current_buffer.insert_text("\n")

        history = InMemoryHistory()
        try:
            if session.svc.metadata_only():  # GHOSTWRITE_METADATA_ONLY: no prompt text on disk, not even here
                raise _NoHistory
            with open(history_path, "a", encoding="utf-8"):
                pass
            history = FileHistory(str(history_path))
        except OSError as e:
            session.hint(f"history is not kept: cannot write {history_path} ({e.strerror or e})")
        except _NoHistory:
            pass
        self.prompt_session = PromptSession(history=history, key_bindings=kb, multiline=False,
                                            completer=_Completer(session), complete_while_typing=False,
                                            prompt_continuation=lambda width, n, soft: "... ".rjust(width),
                                            enable_open_in_editor=False)

    @staticmethod
    @contextlib.contextmanager
    def no_echo():
        """While the model writes: keys typed are not echoed into its text (they wait, unshown, for the
        next prompt); Ctrl+C still interrupts."""
        try:
            import termios

            fd = sys.stdin.fileno()
            old = termios.tcgetattr(fd)
        except (ImportError, OSError, ValueError, AttributeError):
            yield
            return
        new = list(old)
        new[3] &= ~termios.ECHO
        try:
            termios.tcsetattr(fd, termios.TCSANOW, new)
            yield
        finally:
            try:
                termios.tcsetattr(fd, termios.TCSANOW, old)  # TCSANOW keeps the typeahead
            except termios.error:
                pass

    def read(self) -> str:
        """The next input: one line, an Alt+Enter multi-line text, or a \"\"\" block. Raises
        KeyboardInterrupt (Ctrl+C: the line is dropped) and EOFError (Ctrl+D)."""
        text = self.prompt_session.prompt(f"{self.session.label}> ")
        start = text.lstrip()
        if not start.startswith(BLOCK):
            return text
        body = start[len(BLOCK):]
        if len(body.rstrip()) >= len(BLOCK) and body.rstrip().endswith(BLOCK):
            return body.rstrip()[: -len(BLOCK)]
        lines = [body] if body.strip() else []
        while True:
            more = self.prompt_session.prompt("... ")
            if more.rstrip().endswith(BLOCK):
                lines.append(more.rstrip()[: -len(BLOCK)])
                break
            lines.append(more)
        return "\n".join(lines).rstrip("\n") if lines else ""


def _completer_base():
    from prompt_toolkit.completion import Completer

    return Completer


class _Completer(_completer_base()):
    def __init__(self, session: ReplSession):
        self.session = session

    def get_completions(self, document, complete_event):
        from prompt_toolkit.completion import Completion

        from bot.service import SETTINGS, lookup_setting

        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        words = text.split(" ")
        if len(words) == 1:
            options = ["/" + name for name in COMMANDS]
        elif len(words) == 2 and words[0] in ("/set",):
            options = [st.shown_name for st in SETTINGS]  # the settings contract's
        elif len(words) == 3 and words[0] == "/set" and (st := lookup_setting(words[1])) and st.choices:
            options = list(st.choices)
        elif len(words) == 4 and words[0] == "/set" and (st := lookup_setting(words[1])) and st.per_unit:
            options = list(st.per_unit)  # /set length 3 sentences
        elif len(words) == 2 and words[0] == "/model":
            try:
                options = [c["name"] for c in self.session.svc.models()]
            except GhostwriteError:
                options = []
        elif len(words) == 2 and words[0] == "/mode":
            options = ["story", "single"]
        else:
            return
        current = words[-1]
        for opt in options:
            if opt.startswith(current):
                yield Completion(opt, start_position=-len(current))


def interactive_loop(session: ReplSession, reader: TerminalInput) -> int:
    while not session.done:
        try:
            session.poll_jobs()
            try:
                line = reader.read()
            except EOFError:  # Ctrl+D
                session.quit()
                continue
            run_guarded(session, line)
        except KeyboardInterrupt:
            continue  # Ctrl+C at the prompt: the line is cleared
    return session.exit_code


def run_guarded(session: ReplSession, line: str) -> None:
    """One input; whatever goes wrong is one line on the screen and the REPL goes on."""
    try:
        handle(session, line)
    except KeyboardInterrupt:
        session.note("(interrupted)")
    except GhostwriteError as e:
        session.error(str(e))
    except Exception as e:  # noqa: BLE001 - a bug: one line here, the traceback in the log
        log.exception("REPL command failed: %r", line[:200])
        session.error(f"internal error: {type(e).__name__}: {e} (details in repl.log)")


# ---- piped --------------------------------------------------------------------------------------------
def piped_loop(session: ReplSession, stdin: IO[str]) -> int:
    """One prompt per line in, one continuation per line out (newlines in it written as \\n and
    backslashes as \\\\). An empty line continues the story. Lines starting with / are commands; what
    they print goes to standard error, so standard output has exactly one line per other line."""
    out = session.out
    assert out is not None
    try:
        for raw in stdin:
            line = raw[:-1] if raw.endswith("\n") else raw
            line = line[:-1] if line.endswith("\r") else line
            is_command = line.startswith("/") and not line.startswith("//")
            before = session.lines_out
            run_guarded(session, line)
            if not is_command and session.lines_out == before:
                out.write("\n")  # no continuation (an error, or nothing to continue): keep lines aligned
                out.flush()
                session.lines_out += 1
            if session.stopped:
                return 130
            if session.done:
                break
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return session.exit_code
