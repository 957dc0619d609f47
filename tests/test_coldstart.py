"""Cold start (issue 14, item 4): what `ghostwrite generate` does not load, and that its fast exit loses
nothing. The times themselves are bench/coldstart.py's (a shared machine makes timed tests flaky)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules_after(code: str, env: dict | None = None) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_cli_loads_no_frontend_or_store_or_torch_before_a_command():
    mods = _modules_after("import bot.cli")
    assert not {"discord", "aiohttp", "prompt_toolkit", "sqlalchemy", "alembic", "torch"} & mods


def test_the_lazy_commands_are_there_when_asked_for():
    import typer.main

    from bot.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root)
    names = root.list_commands(ctx)
    assert {"repl", "retrain", "generate", "logs"} <= set(names)
    assert root.get_command(ctx, "repl").name == "repl"
    assert names.index("generate") < names.index("logs")  # commands listed before groups, as before


def test_loading_a_model_does_not_import_dynamo(tiny_model):
    mods = _modules_after("import generator; generator.load('tiny')", env=dict(os.environ))
    assert "torch" in mods and "torch._dynamo" not in mods


def test_the_migration_head_is_read_without_alembic_as_alembic_reads_it():
    from bot.store.db import _head_of_files, head_revision

    assert _head_of_files() == head_revision()


def test_generate_as_a_process_prints_and_stores_then_exits_without_alembic(tiny_model):
    from bot.store import Store

    env = dict(os.environ)
    home = Path(env["GHOSTWRITE_HOME"])
    Store().close()  # created and migrated: the process below only checks it is at the head
    with sqlite3.connect(home / "ghostwrite.db") as conn:
        before = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
    code = ("import sys; sys.argv = ['ghostwrite', 'generate', 'tiny', 'ab', '--length', '30', '--seed', '3'];"
            "import atexit; atexit.register(lambda: print('atexit ran', file=sys.stderr));"
            "from bot.cli import main; main()")
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.strip()) > 0
    assert "atexit ran" not in r.stderr  # the teardown was skipped ...
    with sqlite3.connect(home / "ghostwrite.db") as conn:  # ... after the row was committed
        rows = conn.execute("SELECT output, status, source FROM generations ORDER BY id DESC").fetchall()
    assert len(rows) == before + 1
    assert rows[0] == (r.stdout.removesuffix("\n"), "complete", "cli")
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "alembic" not in imported and "discord" not in imported and "torch._dynamo" not in imported
