"""Query helpers of the store that differ by database or stand on their own: full-text search,
filters, percentiles, export rows."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.orm import Session

from bot.store.models import Feedback, Generation

# The PostgreSQL expression must match the GIN index of migration 0002 exactly, or it goes unused.
_PG_DOC = "to_tsvector('simple', coalesce(prompt, '') || ' ' || coalesce(output, ''))"

EXPORT_FIELDS = [
    "id", "created_at", "source", "user_id", "user_name", "guild_id", "channel_id", "model",
    "model_version", "prompt", "output", "params", "tokens_in", "tokens_out", "latency_ms",
    "status", "error", "parent_id", "message_id", "finish_reason",
]  # fmt: skip


def search_terms(query: str) -> list[str]:
    """The words of a search (letters and digits); punctuation and search syntax are ignored."""
    return re.findall(r"\w+", query or "")


def search_ids(session: Session, dialect: str, terms: list[str], limit: int) -> list[int]:
    """Ids of generations whose prompt or output contain every term, best match first."""
    if dialect == "sqlite":
        # Each term as a quoted FTS5 string: no user input is read as FTS query syntax.
        match = " ".join('"' + t.replace('"', '""') + '"' for t in terms)
        sql = text(
            "SELECT rowid FROM generations_fts WHERE generations_fts MATCH :q "
            "ORDER BY bm25(generations_fts, 2.0, 1.0), rowid DESC LIMIT :n"
        )
        return [r[0] for r in session.execute(sql, {"q": match, "n": limit})]
    if dialect == "postgresql":
        sql = text(
            f"SELECT id FROM generations WHERE {_PG_DOC} @@ plainto_tsquery('simple', :q) "
            f"ORDER BY ts_rank({_PG_DOC}, plainto_tsquery('simple', :q)) DESC, id DESC LIMIT :n"
        )
        return [r[0] for r in session.execute(sql, {"q": " ".join(terms), "n": limit})]
    # Any other database: case-insensitive substring match on every term.
    conditions = []
    for term in terms:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(
                Generation.prompt.ilike(pattern, escape="\\"),
                Generation.output.ilike(pattern, escape="\\"),
            )
        )
    stmt = select(Generation.id).where(and_(*conditions)).order_by(Generation.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def filtered(
    stmt: Select[Any],
    model: str | None = None,
    source: str | None = None,
    user_id: str | int | None = None,
    since: datetime | None = None,
    status: str | None = None,
) -> Select[Any]:
    """`stmt` narrowed by the usual filters. `model` may be `name` or `name@vN`."""
    if model:
        name, _, version = model.partition("@")
        stmt = stmt.where(Generation.model == name)
        if version:
            stmt = stmt.where(Generation.model_version == parse_version(version))
    if source:
        stmt = stmt.where(Generation.source == source)
    if user_id is not None:
        stmt = stmt.where(Generation.user_id == str(user_id))
    if since is not None:
        stmt = stmt.where(Generation.created_at >= since)
    if status:
        stmt = stmt.where(Generation.status == status)
    return stmt


def parse_version(version: str | int | None) -> int | None:
    """`3`, `"3"` or `"v3"` → 3."""
    if version is None or version == "":
        return None
    if isinstance(version, int):
        return version
    digits = str(version).strip().lower().removeprefix("v")
    if not digits.isdigit():
        from bot.store.db import StoreError

        raise StoreError(f"not a model version: {version!r} (use a number like 3 or v3)")
    return int(digits)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (like numpy)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def export_row(record: dict[str, Any], fmt: str) -> dict[str, Any]:
    """A generation as one export row: JSON keeps `params` as an object; CSV gets JSON text."""
    row = {name: record.get(name) for name in EXPORT_FIELDS}
    if fmt == "csv":
        row["params"] = json.dumps(row["params"] or {}, sort_keys=True)
    return row


def stats(s: Session) -> dict[str, Any]:
    """Per model: count, count by status, latency p50/p90/p99 (ms), tokens out, feedback sum."""
    g = Generation
    out: dict[str, dict[str, Any]] = {}
    by_status = select(g.model, g.status, func.count(), func.coalesce(func.sum(g.tokens_out), 0))
    for model, status, n, tokens in s.execute(by_status.group_by(g.model, g.status)):
        row = out.setdefault(
            model, {"count": 0, "by_status": {}, "latency_ms": {}, "tokens_out": 0, "feedback": 0}
        )
        row["count"] += n
        row["by_status"][status] = n
        row["tokens_out"] += int(tokens)
    latencies: dict[str, list[float]] = defaultdict(list)
    timed = select(g.model, g.latency_ms).where(g.latency_ms.is_not(None))
    for model, ms in s.execute(timed.order_by(g.model, g.latency_ms)):
        latencies[model].append(ms)
    for model, values in latencies.items():
        out[model]["latency_ms"] = {f"p{q}": percentile(values, q) for q in (50, 90, 99)}
    votes = select(g.model, func.sum(Feedback.value)).join(Feedback).group_by(g.model)
    for model, total in s.execute(votes):
        out[model]["feedback"] = int(total or 0)
    return {"total": sum(r["count"] for r in out.values()), "models": dict(sorted(out.items()))}
