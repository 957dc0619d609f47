"""Schema migrations: a new database gets the newest schema; a database made by the first version
(revision 0001: no message ids, no stories, no search index) upgrades in place, keeping its rows."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, exc, inspect, text

from bot.store import Store, StoreError
from bot.store.db import (
    Database,
    InvalidRecord,
    alembic_config,
    current_revision,
    head_revision,
    include_object,
    migrate,
)
from bot.store.models import Base

ROWS_0001 = [
    # generations as the first version wrote them (no message_id column yet)
    """INSERT INTO generations (id, created_at, source, user_id, user_name, model, model_version,
           prompt, output, params, tokens_in, tokens_out, latency_ms, status, error, parent_id)
       VALUES (1, '2024-01-02 03:04:05.000000', 'repl', 'u1', 'ann', 'poe', 1,
           'Once upon a midnight', ' dreary, weak and weary', '{"temperature": 0.8, "seed": 3}',
           4, 5, 120, 'complete', NULL, NULL)""",
    """INSERT INTO generations (id, created_at, source, user_id, model, prompt, output, status,
           error, parent_id)
       VALUES (2, '2024-01-02 03:05:00.000000', 'discord', 'u2', 'poe', 'Quoth the raven',
           ' nev', 'interrupted', NULL, 1)""",
    """INSERT INTO feedback (id, generation_id, user_id, value, emoji, created_at)
       VALUES (1, 1, 'u2', 1, '', '2024-01-02 03:06:00.000000')""",
    """INSERT INTO training_runs (id, created_at, model, corpus, status, val_bpc, metrics)
       VALUES (1, '2024-01-01 00:00:00.000000', 'poe', 'poe.txt', 'complete', 1.9, '{"steps": 100}')""",
    """INSERT INTO settings (id, scope_kind, scope_id, guild_id, "values", updated_at)
       VALUES (1, 'guild', '10', '10', '{"temperature": 0.5}', '2024-01-01 00:00:00.000000')""",
]


def make_0001_database(url: str) -> None:
    db = Database(url)
    migrate(db, "0001")
    assert current_revision(db.engine) == "0001"
    with db.engine.begin() as conn:
        names = set(inspect(conn).get_table_names())
        assert "stories" not in names
        assert "message_id" not in {c["name"] for c in inspect(conn).get_columns("generations")}
        for statement in ROWS_0001:
            conn.exec_driver_sql(statement)
    db.dispose()


def schema_differences(store: Store) -> list:
    with store._db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        return compare_metadata(context, Base.metadata)


def test_new_database_gets_the_newest_schema(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'new.db'}") as store:
        assert current_revision(store._db.engine) == head_revision() >= "0005"
        names = set(inspect(store._db.engine).get_table_names())
        assert {"generations", "feedback", "training_runs", "settings", "stories", "alembic_version",
                "generations_fts", "member_prefs", "cooldowns", "locks", "story_threads"} <= names  # fmt: skip
        assert schema_differences(store) == []  # the migrations build exactly what the models say


def test_database_from_first_version_upgrades_without_losing_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_0001_database(url)

    with Store(url) as store:
        assert current_revision(store._db.engine) == head_revision()
        assert schema_differences(store) == []
        first, second = store.get(1), store.get(2)
        assert (first.prompt, first.output, first.user_name, first.model_spec) == (
            "Once upon a midnight", " dreary, weak and weary", "ann", "poe@v1")  # fmt: skip
        assert first.params == {"temperature": 0.8, "seed": 3}
        assert (first.tokens_in, first.tokens_out, first.latency_ms) == (4, 5, 120)
        assert first.created_at.isoformat() == "2024-01-02T03:04:05+00:00"
        assert (second.status, second.parent_id, second.message_id) == ("interrupted", 1, None)
        assert [g.id for g in store.chain(2)] == [1, 2]
        assert [(f.user_id, f.value, f.emoji) for f in store.get_feedback(1)] == [("u2", 1, None)]
        run = store.get_training_run(1)
        assert (run.status, run.val_bpc, run.metrics) == ("complete", 1.9, {"steps": 100})
        assert store.get_settings(10) == {"temperature": 0.5}

        # what 0002 added works on the old rows
        store.set_message_id(2, 555)
        assert store.find_by_message(555).id == 2
        assert [g.id for g in store.search("dreary")] == [1]  # old rows are in the new index
        assert [g.id for g in store.search("raven")] == [2]
        sid = store.start_story(10, 20, "Once", created_by="u1")
        assert store.active_story(10, 20).id == sid
        new = store.record_generation(model="poe", prompt="new row", output="after upgrade", parent_id=2)
        assert new == 3 and [g.id for g in store.search("upgrade")] == [3]
        # what 0003 added: a generation written twice under one key is stored once (old rows have none)
        keyed = dict(model="poe", prompt="keyed", output="once", request_key="k-1")
        assert store.record_generation(**keyed) == store.record_generation(**keyed) == 4
        assert len(store.list_generations(limit=None)) == 4 and [g.id for g in store.search("keyed")] == [4]
        # what 0004 added: why the text ended (old rows have no reason)
        assert first.finish_reason is None
        reasoned = store.record_generation(model="poe", prompt="why", output="ended", finish_reason="stop")
        assert store.get(reasoned).finish_reason == "stop"

        # foreign keys still hold after the upgrade
        with pytest.raises(exc.IntegrityError):
            with store._db.engine.begin() as conn:
                conn.exec_driver_sql(
                    "INSERT INTO feedback (generation_id, user_id, value, emoji, created_at) "
                    "VALUES (999, 'x', 1, '', '2024-01-01')"
                )
        assert store.forget_user("u1")["generations"] == 1
        assert store.get(2).parent_id is None and store.get_feedback(1) == []
        assert store.integrity_check() == []


def test_opening_a_current_database_writes_nothing(tmp_path):
    path = tmp_path / "current.db"
    with Store(f"sqlite:///{path}") as store:
        store.record_generation(model="poe", prompt="p", output="o")
    # a read-only connection can open it: no migration is attempted when it is up to date
    with Store(f"sqlite:///file:{path}?mode=ro&uri=true") as ro:
        assert len(ro.list_generations()) == 1


def test_first_version_database_opened_read_only_says_so(tmp_path):
    path = tmp_path / "old.db"
    make_0001_database(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="read-only"):
        Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    with Store(f"sqlite:///{path}") as store:  # and nothing was half-done
        assert len(store.list_generations()) == 2


def test_migration_is_one_transaction(tmp_path, monkeypatch):
    """If a migration fails half-way, the database stays at the old revision with its rows."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_0001_database(url)
    import bot.store.db as dbmod

    real_config = dbmod.alembic_config

    def failing_config(connection=None):
        cfg = real_config(connection)
        if connection is not None:

            @event.listens_for(connection, "before_cursor_execute")
            def boom(conn, cursor, statement, *args):
                if "CREATE TRIGGER generations_fts_update" in statement:
                    raise RuntimeError("simulated crash during migration")
        return cfg

    monkeypatch.setattr(dbmod, "alembic_config", failing_config)
    with pytest.raises(RuntimeError, match="simulated"):
        Store(url)
    monkeypatch.undo()
    db = Database(url)
    assert current_revision(db.engine) == "0001"
    with db.engine.connect() as conn:
        assert "stories" not in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM generations")).scalar() == 2
    db.dispose()
    with Store(url) as store:  # and a later start completes it
        assert len(store.search("raven")) == 1


def test_migrations_dir_ships_with_the_package():
    from bot.store import db as dbmod

    versions = sorted(p.name for p in (dbmod.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert versions[:4] == ["0001_initial.py", "0002_message_id_stories_fts.py", "0003_request_key.py",
                            "0004_finish_reason.py"]
    assert (dbmod.MIGRATIONS_DIR / "env.py").exists()
    assert head_revision() >= "0004"


def test_database_from_a_newer_version_is_refused_clearly(tmp_path):
    url = f"sqlite:///{tmp_path / 'future.db'}"
    with Store(url) as store:
        with store._db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(StoreError, match="schema 0099, newer than this ghostwrite knows") as info:
        Store(url)
    assert "\n" not in str(info.value)


def test_request_key_migration_goes_down_and_up_keeping_rows_and_search(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    with Store(url) as store:
        store.record_generation(model="poe", prompt="Quoth the raven", output="nevermore", request_key="k")
    db = Database(url)
    with db.engine.begin() as conn:  # down: the column and its index go, the search triggers stay
        command.downgrade(alembic_config(conn), "0002")
    with db.engine.connect() as conn:
        assert "request_key" not in {c["name"] for c in inspect(conn).get_columns("generations")}
    db.dispose()
    with Store(url) as store:  # up again
        assert current_revision(store._db.engine) == head_revision() and schema_differences(store) == []
        assert store.record_generation(model="poe", prompt="raven again", request_key="k") == 2
        assert sorted(g.id for g in store.search("raven")) == [1, 2] and store.integrity_check() == []


def test_finish_reason_migration_goes_down_and_up_keeping_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'reasons.db'}"
    with Store(url) as store:
        store.record_generation(model="poe", prompt="Quoth the raven", output="nevermore", finish_reason="length")
        with pytest.raises(InvalidRecord, match="unknown finish reason"):
            store.record_generation(model="poe", prompt="p", finish_reason="tired")
    db = Database(url)
    with db.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0003")
    with db.engine.connect() as conn:
        assert "finish_reason" not in {c["name"] for c in inspect(conn).get_columns("generations")}
    db.dispose()
    with Store(url) as store:
        assert schema_differences(store) == [] and store.get(1).finish_reason is None
        assert [g.id for g in store.search("raven")] == [1] and store.integrity_check() == []
