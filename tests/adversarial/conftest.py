"""The adversarial battery (issue 16): every CLI option, REPL /set key, Discord setting and environment
variable the README documents, fed tiny, huge, negative, NaN, ±inf, subnormal, empty, unicode and bytes.
The quick part runs with the normal suite; the long part is marked `slow` (`make drills`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

# `from conftest import shared_corpus` in any test module finds this conftest in a full run: the same names
from shared_corpora import SHARED, shared_corpus, shared_path  # noqa: F401

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """The long part runs when asked for (`-m slow`, `make drills`), also under a `-m` that replaces
    pyproject's `not slow` (as tests/drills does)."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    slow = [it for it in items if it.get_closest_marker("slow") and HERE in Path(str(it.fspath)).parents]
    if slow:
        config.hook.pytest_deselected(items=slow)
        gone = {id(it) for it in slow}
        items[:] = [it for it in items if id(it) not in gone]


@pytest.fixture(autouse=True)
def _ghostwrite_logger_restored():
    """run_repl (in process) sends the "ghostwrite" logger to a file and stops its propagation: undo it."""
    logger = logging.getLogger("ghostwrite")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    for h in logger.handlers[:]:
        if h not in handlers:
            logger.removeHandler(h)
            h.close()
    logger.propagate, logger.level = propagate, level
