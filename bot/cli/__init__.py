"""`ghostwrite`: the one command, a typer app made of one module per command group — generate.py,
corpus.py, train.py (train, eval), models.py, logs.py, retrain.py, and the frontends' repl and bot. Each
goes through bot.service (never generator, torch or the store). Bad input prints one line and exits with
code 2, never a traceback: commands `fail()` or raise GhostwriteError, and common.Group (the click group of
every app here) prints it; `run` does the same for the environment checks and typer's usage errors."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
import typer.main

from bot.cli import attribute, corpus, generate, logs, models, train
from bot.cli.common import Group, one_line, report
from bot.service import GhostwriteError, check_database_url, env

# commands whose modules load heavy packages (discord, aiohttp, prompt_toolkit), imported only when
# that command is run or the commands are listed: `ghostwrite generate` does not wait for them
LAZY = {"repl": ("bot.repl", "repl_command"), "retrain": ("bot.cli.retrain", "retrain_command"),
        "bot": ("bot.discord.runner", "bot_command"), "serve": ("bot.cli.serve", "serve_command")}


class Root(Group):
    """The `ghostwrite` group: the LAZY commands are added on first use (when their module is there)."""

    def _load(self, name: str) -> None:
        module, attr = LAZY[name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            return
        one = typer.Typer(cls=Group, add_completion=False, pretty_exceptions_enable=False)
        one.command(name)(getattr(mod, attr))
        self.add_command(typer.main.get_command(one), name)

    def list_commands(self, ctx):
        for name in LAZY:
            if name not in self.commands:
                self._load(name)
        names = super().list_commands(ctx)  # commands before groups, as typer lists them
        return sorted(names, key=lambda n: isinstance(self.commands[n], typer.core.TyperGroup))

    def get_command(self, ctx, name):
        if name in LAZY and name not in self.commands:
            self._load(name)
        return super().get_command(ctx, name)


app = typer.Typer(
    cls=Root,
    help="Write what comes next in the voice of a chosen author: train LSTM models on a corpus, "
    "then continue prompts in the terminal or on Discord.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(corpus.app, name="corpus", help="Register, fetch and inspect corpora.")
app.command("train")(train.train_command)
app.command("eval")(train.eval_command)
app.add_typer(models.app, name="models")
app.command("generate")(generate.generate_command)
app.command("attribute")(attribute.attribute_command)


@app.command("health")
def health_command():
    """Exit 0 when the store opens and at least one model is registered (container health check)."""
    from bot.service import ContinuationService

    ContinuationService().health()  # the store opens, a model is registered; or one line, exit 2
    print("ok")


app.add_typer(logs.app, name="logs")  # (repl, retrain and bot: LAZY, added by Root when asked for)


def run(argv: list[str] | None = None) -> int:
    """Run `ghostwrite` with these arguments (default: the command line) and return its exit code.
    Whatever a user can get wrong ends here as one line on stderr: a GhostwriteError, junk in an
    environment variable or a bad option (which typer would show as a framed box of several lines)
    exits 2, a refused confirmation 1."""
    errors = sys.modules[typer.BadParameter.__module__]  # click's exceptions (vendored by newer typer)
    try:
        env.check()  # junk in a documented environment variable: one line, before anything is done
        env.log_level()
        check_database_url()
        code = app(args=argv, prog_name="ghostwrite", standalone_mode=False)
    except GhostwriteError as e:  # (from the checks above: the app's commands end theirs in common.Group)
        return report(e)
    except errors.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `ghostwrite logs`: the help (typer's rich help
            if e.format_message().strip():             # is printed already, plain click's is not)
                print(e.format_message(), file=sys.stderr)
            return 2
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        return one_line(f"{e.format_message()}{where}", 2)
    except errors.ClickException as e:
        return one_line(e.format_message(), e.exit_code)
    except typer.Abort:
        return one_line("aborted", 1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    try:
        level = env.log_level()
    except GhostwriteError:
        level = "WARNING"  # run() says what is wrong with it
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    code = run()
    if sys.argv[1:2] == ["generate"] and "coverage" not in sys.modules:
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """End `ghostwrite generate` without the interpreter's teardown of torch and SQLAlchemy (0.3-0.5 s of
    freeing modules and objects, longer than writing the text): by now every row is committed (or in the
    spool, fsynced) and nothing of the command is left running; the output streams and logging are
    flushed first. (Not for commands that start work of their own: train, the REPL, the bot.)"""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what could be written was
            pass
    os._exit(code)
