"""What the `ghostwrite` command modules share: the two consoles, `fail` (refuse with one line: it only
raises), the ONE place that turns a GhostwriteError into `error: …` on stderr and its exit code (2 unless
the error says otherwise: `Group`, the click group every typer app of bot/cli is made with, and `report`,
which bot.cli.run uses for the environment checks made before the app runs), and the callbacks of
numeric options."""

from __future__ import annotations

import math
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from bot.service import GhostwriteError

console = Console()
err = Console(stderr=True)

MAX_SEED = 2**63 - 1


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command: `message` is printed as one line (by `Group`), and the exit code is `code`."""
    error = GhostwriteError(message)
    error.exit_code = code
    raise error


def one_line(message: str, code: int) -> int:
    """Print `error: message` on stderr, on one line (a message of several lines is joined); return `code`."""
    message = " ".join(message.split())
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return code


def report(e: GhostwriteError) -> int:
    return one_line(str(e) or type(e).__name__, getattr(e, "exit_code", 2))


class Group(TyperGroup):
    """A typer app's click group that ends a GhostwriteError raised by any of its commands as one line and
    its exit code (no traceback), whether run by bot.cli.run, by click's own main or by a CliRunner."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GhostwriteError as e:
            raise typer.Exit(report(e)) from None


def sub_app(**kwargs) -> typer.Typer:
    """A typer sub-app (a command group) of `ghostwrite`, with the one error handler."""
    return typer.Typer(cls=Group, no_args_is_help=True, **kwargs)


def finite(value: Optional[float]) -> Optional[float]:
    """Callback of float options: NaN and ±inf are refused (a range alone lets NaN through click's
    FloatRange in older typer versions)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def positive(value: Optional[float]) -> Optional[float]:
    """Callback of float options that must be above 0 (a range's minimum is inclusive)."""
    if finite(value) is not None and value <= 0:
        raise typer.BadParameter(f"must be above 0, got {value}")
    return value
