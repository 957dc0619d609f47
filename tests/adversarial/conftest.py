"""The adversarial battery (issue 16): every CLI option, REPL /set key, Discord setting and environment
variable the README documents, fed tiny, huge, negative, NaN, ±inf, subnormal, empty, unicode and bytes.
The quick part runs with the normal suite; the long part is marked `slow` (`make drills`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

# `from conftest import shared_corpus` in any test module finds this conftest in a full run: the same names
from shared_corpora import SHARED, shared_corpus, shared_path  # noqa: F401
from slow_parts import deselect_slow_under

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    deselect_slow_under(HERE, config, items)


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
