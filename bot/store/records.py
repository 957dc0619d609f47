"""What the store hands out: plain frozen dataclasses, detached from any database session.

`to_dict()` gives a JSON-ready dict (times as ISO 8601 strings in UTC) for `--json` output and export.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.store import models


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class _Record:
    @classmethod
    def from_row(cls, row: Any) -> Any:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        return cls(**{name: getattr(row, name) for name in names})

    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Generation(_Record):
    id: int
    created_at: datetime
    source: str
    user_id: str | None
    user_name: str | None
    guild_id: str | None
    channel_id: str | None
    model: str
    model_version: int | None
    prompt: str
    output: str
    params: dict[str, Any] = field(default_factory=dict)
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: int | None = None
    status: str = "running"
    error: str | None = None
    parent_id: int | None = None
    message_id: str | None = None
    finish_reason: str | None = None  # stop | length | interrupted | error (None: stored before 0004)

    @property
    def model_spec(self) -> str:
        """`name@vN`, or just the name when the version is unknown."""
        return f"{self.model}@v{self.model_version}" if self.model_version is not None else self.model

    @classmethod
    def from_row(cls, row: models.Generation) -> Generation:
        g = super().from_row(row)
        return dataclasses.replace(g, params=dict(row.params or {}), output=row.output or "")


@dataclass(frozen=True)
class Feedback(_Record):
    id: int
    generation_id: int
    user_id: str
    value: int
    emoji: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Feedback) -> Feedback:
        return dataclasses.replace(super().from_row(row), emoji=row.emoji or None)


@dataclass(frozen=True)
class TrainingRun(_Record):
    id: int
    created_at: datetime
    model: str
    corpus: str | None
    base_model: str | None
    base_version: int | None
    new_version: int | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    metrics: dict[str, Any] | None
    val_bpc: float | None
    error: str | None
    requested_by: str | None
    progress: dict[str, Any] | None


@dataclass(frozen=True)
class Story(_Record):
    id: int
    guild_id: str | None
    channel_id: str | None
    text: str
    active: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None
