"""The service: the one door every frontend (CLI, REPL, Discord) goes through. Frontends import only
this package — never `generator`, `torch` or `bot.store` — and are typed against `Ghostwrite` (api.py).

    api.py         the interface (the `Ghostwrite` Protocol) and its data: Request, Prepared, Result
    core.py        ContinuationService, the implementation, assembled from:
    generation.py    the door (prepare: checked once, model resolved once), streaming, recording, the spool
    library.py       models, corpora and recipes, training, uploaded corpora
    records.py       history, search, export, forget, votes, guild/channel settings, stories
    jobs.py          retraining jobs (JobRunner, built here only)
    bridge.py      the one bridge from a worker thread to a consumer thread (Relay) or event loop
                   (AsyncStream), with the one coalescing interval

Also re-exported for frontends: the settings contract and the limits (generator/generation/settings.py),
GhostwriteError, and the few helpers they need (the data folder, atomic writes, environment checks).
"""

from generator import env
from generator.corpora.corpus import unsurrogate
from generator.errors import GhostwriteError
from generator.generation.settings import (
    CONTEXT_CHARS,
    MAX_LENGTH,
    MAX_PROMPT_CHARS,
    MAX_STORY_CHARS,
    SETTINGS,
    UNITS,
    SamplingSettings,
    Setting,
    check_prompt,
    footer_parts,
    json_schema,
    settings_line,
)
from generator.generation.settings import lookup as lookup_setting
from generator.paths import atomic_write_bytes, atomic_write_text, home

from .api import AsyncTextStream, Ghostwrite, Prepared, Request, Result, TextStream
from .bridge import COALESCE_S, AsyncStream, Relay
from .core import ContinuationService, check_database_url
from .generation import Stream, clean_text
from .jobs import MAX_JOB_SECONDS

__all__ = [
    "AsyncStream", "AsyncTextStream", "COALESCE_S", "CONTEXT_CHARS", "ContinuationService", "Feedback",
    "Generation", "Ghostwrite", "GhostwriteError", "MAX_JOB_SECONDS", "MAX_LENGTH", "MAX_PROMPT_CHARS", "MAX_STORY_CHARS",
    "Prepared", "Relay", "Request", "Result", "SETTINGS", "Setting", "SamplingSettings", "Story", "Stream",
    "TextStream", "TrainingRun", "UNITS", "atomic_write_bytes", "atomic_write_text", "check_database_url", "check_prompt",
    "clean_text", "env", "footer_parts", "home", "json_schema", "lookup_setting", "settings_line",
    "unsurrogate",
]


def __getattr__(name: str):
    """The store's records (Generation, Feedback, Story, TrainingRun), imported on first use: they load
    SQLAlchemy, which `ghostwrite --help` need not wait for."""
    if name in ("Feedback", "Generation", "Story", "TrainingRun"):
        from bot.store import records

        return getattr(records, name)
    raise AttributeError(f"module 'bot.service' has no attribute {name!r}")
