"""Where the tests find the real corpora (../shared/corpora on developer and CI machines, never on a user's).

The one decision, made from GHOSTWRITE_TEST_SHARED:
  unset          → ../shared/corpora beside the checkout (if it exists)
  a path         → that folder
  "none" or ""   → hidden, as on a user's machine: every test must pass or skip without it

Test modules import from here: `from shared_corpora import shared_corpus`. (`from conftest import ...`
resolves to whichever conftest.py pytest loaded last, tests/drills/conftest.py in a full run; so every
conftest.py re-exports these names, and that import works too.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "GHOSTWRITE_TEST_SHARED"
REPO = Path(__file__).resolve().parents[1]


def _decide() -> Path | None:
    value = os.environ.get(ENV)
    if value is None:
        return REPO.parent / "shared" / "corpora"
    if value.strip().lower() in ("", "none"):
        return None
    return Path(value).expanduser().resolve()


SHARED: Path | None = _decide()
"""The shared corpora folder, or None when hidden with GHOSTWRITE_TEST_SHARED=none (it may still not exist)."""


def shared_path(name: str) -> Path | None:
    """The shared corpus `name` (a file or folder under SHARED), or None when hidden or absent: for tests
    that fall back to text they make themselves."""
    if SHARED is None:
        return None
    path = SHARED / name
    return path if path.exists() else None


def shared_corpus(name: str) -> Path:
    """The shared corpus `name`; skips the calling test (with the reason) when it is hidden or absent."""
    if SHARED is None:
        pytest.skip(f"shared corpora hidden ({ENV}={os.environ.get(ENV, '')!r}): {name} not available")
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared corpus {name} not present in {SHARED}")
    return path
