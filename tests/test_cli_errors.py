"""The one place a GhostwriteError becomes `error: …` on stderr and an exit code (bot/cli/common.py): every
command group of `ghostwrite` is made with it, so a refusal is one line whether the command runs through
`bot.cli.run`, the whole app under a CliRunner, or one sub-app on its own (as the corpus tests run it)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from bot.cli import app, run
from bot.cli.common import Group, fail, sub_app
from bot.cli.corpus import app as corpus_app


def _groups(command, path: str = "ghostwrite"):
    if isinstance(command, TyperGroup):
        yield path, command
        for name, sub in command.commands.items():
            yield from _groups(sub, f"{path} {name}")


def test_every_command_group_has_the_one_handler():
    groups = dict(_groups(typer.main.get_command(app)))
    assert {"ghostwrite", "ghostwrite corpus", "ghostwrite models", "ghostwrite logs"} <= set(groups)
    assert not [path for path, g in groups.items() if not isinstance(g, Group)]


def test_a_refusal_is_one_line_and_exit_2_everywhere(fresh_home, capsys):
    res = CliRunner().invoke(app, ["models", "show", "nope"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["error: unknown model 'nope' (models: none yet: run `ghostwrite train`)"]

    res = CliRunner().invoke(corpus_app, ["show", "nope"])  # the sub-app alone
    assert res.exit_code == 2 and res.output.strip().startswith("error: unknown corpus 'nope'")
    assert len(res.output.strip().splitlines()) == 1

    assert run(["models", "show", "nope"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: unknown model 'nope' (models: none yet: run `ghostwrite train`)"]


def test_fail_only_raises_and_its_code_is_kept():
    demo = sub_app()

    @demo.command("stop")
    def stop(code: int = 2):
        fail("a message\nof two lines", code=code)

    @demo.command("other")
    def other():
        pass

    res = CliRunner().invoke(demo, ["stop", "--code", "130"])
    assert res.exit_code == 130 and res.output.strip() == "error: a message of two lines"
    assert CliRunner().invoke(demo, ["stop"]).exit_code == 2


def test_a_home_folder_of_nobody_is_a_plain_path(fresh_home, capsys):
    """`~0` names the home folder of a user that does not exist: Path.expanduser raised RuntimeError (a
    traceback, found by the battery with `eval --corpus=~0`); it is now a path like any other, so a missing
    file is one line."""
    assert run(["corpus", "add", "nobody", "~nosuchuser0/book.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "~nosuchuser0" in err[0]
