"""The PostgreSQL the tests may use (GHOSTWRITE_TEST_PG_URL, set by .ci/run): reachability and a fresh
schema per test or module, so tests never see each other's rows."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine

PG_URL = os.environ.get("GHOSTWRITE_TEST_PG_URL")


def reachable() -> bool:
    if not PG_URL:
        return False
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


@contextmanager
def fresh_schema(prefix: str = "gw_test"):
    """Yield a URL whose connections live in a new, empty schema (dropped afterwards); skip the test
    when PostgreSQL is not configured or not reachable."""
    if not reachable():
        pytest.skip("PostgreSQL not configured or not reachable (GHOSTWRITE_TEST_PG_URL)")
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        # synchronous_commit=off: this server fsyncs slowly; it changes durability, not behaviour
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
