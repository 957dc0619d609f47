"""ContinuationService: the one implementation of the service interface (api.Ghostwrite), assembled from
its parts: generating (generation.py), models, corpora and training (library.py), the stored history,
votes, settings and stories (records.py) and retraining jobs (jobs.py)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from generator.errors import GhostwriteError
from generator.generation.settings import CONTEXT_CHARS, MAX_PROMPT_CHARS, MAX_STORY_CHARS

from .generation import Generating
from .jobs import JobRunner, Jobs
from .library import Library
from .members import Members
from .records import Records
from .rows import GroupCommit
from .style import Style


class ContinuationService(Generating, Library, Records, Members, Jobs, Style):
    def __init__(self, store=None, default_model: str | None = None, workers: int = 4, device: str = "cpu",
                 job_runner: JobRunner | None = None):
        self._store = store
        self._own_store = store is None
        self.default_model = default_model or os.environ.get("GHOSTWRITE_MODEL") or None
        self.device = device
        self.max_prompt_chars: int = MAX_PROMPT_CHARS  # the service's limits, read by frontends
        self.story_context_chars: int = CONTEXT_CHARS  # how much of a story's end a continuation sees
        self.max_story_chars: int = MAX_STORY_CHARS  # a story's whole text, sent with its key (Request.story)
        self.job_runner = job_runner
        self._models: dict[tuple[str, int], object] = {}
        self._load_lock = threading.Lock()
        self._newest, self._defaults, self._resolved = None, {}, {}  # what prepare read from the registry
        self._store_lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ghostwrite-gen")
        self._rows = GroupCommit(self._record_batch)  # finished requests' rows, written together

    @property
    def store(self):
        """The store (bot/store), opened on first use. Behind the door: frontends never touch it."""
        with self._store_lock:
            if self._store is None:
                from bot.store import Store

                self._store = Store()
            return self._store

    def health(self) -> None:
        """Raises (one line) unless the store opens and at least one model is registered."""
        self.store  # noqa: B018 - opening it is the check
        if not self.models():
            raise GhostwriteError("no model registered yet")

    def close(self) -> None:
        """Let running generations finish, then stop the worker threads; a store this service opened
        itself is closed too."""
        self.executor.shutdown(wait=True, cancel_futures=False)
        with self._store_lock:
            store, self._store = (self._store, None) if self._own_store else (None, self._store)
        if store is not None:
            store.close()

    def __enter__(self) -> ContinuationService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_database_url() -> None:
    """GHOSTWRITE_DATABASE_URL that is not a URL of a database SQLAlchemy knows is a setting to fix, not a
    database that is down: refused here (one line) rather than every generation spooled "until it works"."""
    raw = os.environ.get("GHOSTWRITE_DATABASE_URL", "").strip()
    if not raw:
        return
    from bot.store.db import database_url

    url = database_url(raw)
    try:
        url.get_dialect()
    except Exception:  # noqa: BLE001 - NoSuchModuleError, or a driver that fails to import
        raise GhostwriteError(f"GHOSTWRITE_DATABASE_URL names no database SQLAlchemy knows: "
                              f"{url.render_as_string(hide_password=True)!r}") from None
