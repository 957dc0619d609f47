"""PostgreSQL specifics (the shared store suite in test_store.py also runs on PostgreSQL):
migrations from the first version with rows, the full-text index really used, two processes
writing at once, an unreachable server. Skipped when GHOSTWRITE_TEST_PG_URL is unset or unreachable."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pgutil import fresh_schema
from sqlalchemy import inspect

from bot.store import Store, StoreError
from bot.store.db import Database, current_revision, database_url, head_revision, include_object, migrate
from bot.store.models import Base

pytestmark = pytest.mark.postgres




def _concurrency_module():
    """test_store_concurrency.py (its worker script), however pytest imported the tests."""
    path = Path(__file__).with_name("test_store_concurrency.py")
    spec = importlib.util.spec_from_file_location("_gw_store_concurrency", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture
def schema_url():
    """A URL whose connections live in a fresh, empty schema (dropped afterwards)."""
    with fresh_schema("gw_test") as url:
        yield url


def test_first_version_database_upgrades_on_postgres(schema_url):
    db = Database(schema_url)
    migrate(db, "0001")
    with db.engine.begin() as conn:
        assert "stories" not in inspect(conn).get_table_names()
        conn.exec_driver_sql(
            """INSERT INTO generations (created_at, source, user_id, model, model_version, prompt,
                   output, params, status, latency_ms)
               VALUES ('2024-01-02 03:04:05+00', 'repl', 'u1', 'poe', 1, 'Once upon a midnight',
                   ' dreary', '{"seed": 3}', 'complete', 120),
                      ('2024-01-02 03:05:00+00', 'discord', 'u2', 'poe', 1, 'Quoth the raven',
                   ' nev', '{}', 'interrupted', NULL)"""
        )
        conn.exec_driver_sql(
            "INSERT INTO feedback (generation_id, user_id, value, emoji, created_at) "
            "VALUES (1, 'u2', -1, '', now())"
        )
    db.dispose()

    with Store(schema_url) as store:
        assert current_revision(store._db.engine) == head_revision()  # every migration since, applied
        with store._db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_object": include_object})
            assert compare_metadata(context, Base.metadata) == []
        first = store.get(1)
        assert (first.prompt, first.output, first.params, first.latency_ms) == (
            "Once upon a midnight", " dreary", {"seed": 3}, 120)  # fmt: skip
        assert first.created_at.isoformat() == "2024-01-02T03:04:05+00:00"
        assert store.stats()["models"]["poe"]["feedback"] == -1
        assert [g.id for g in store.search("raven")] == [2]
        store.set_message_id(1, 42)
        assert store.find_by_message(42).id == 1
        assert store.record_generation(model="poe", prompt="third") == 3


def test_search_uses_the_gin_index(schema_url):
    with Store(schema_url) as store:
        for i in range(30):
            store.record_generation(model="poe", prompt=f"prompt {i}", output=f" words number{i}")
        with store._db.engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(
                "EXPLAIN SELECT id FROM generations WHERE to_tsvector('simple', coalesce(prompt, '')"
                " || ' ' || coalesce(output, '')) @@ plainto_tsquery('simple', 'number7')"
            ))  # fmt: skip
        assert "ix_generations_fts" in plan
        assert [g.output for g in store.search("NUMBER7")] == [" words number7"]


def test_two_processes_write_postgres_at_once(schema_url, tmp_path):
    results = _concurrency_module().run_workers(schema_url, tmp_path, 100)
    assert [r["errors"] for r in results] == [[], []]
    with Store(schema_url) as store:
        assert len(store.list_generations(limit=None)) == 200
        assert len(store.search("repl output", limit=500)) == 100
        assert len(store.get_settings("g")) == 4


def test_unreachable_server_is_one_clear_line():
    with pytest.raises(StoreError, match="cannot reach the database") as info:
        Store("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    assert "\n" not in str(info.value)


def test_plain_postgres_urls_use_psycopg_3():
    assert database_url("postgresql://u:secret@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(StoreError) as info:
        Store("postgresql://someone:hunter2@127.0.0.1:1/test?connect_timeout=2")
    assert "hunter2" not in str(info.value)
