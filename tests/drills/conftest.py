"""Reliability drills. Quick ones run with the normal suite; long ones are marked `slow` and run with
`make drills` (`pytest -m slow tests/drills`).

A run whose `-m` expression does not mention `slow` (the default run, or e.g. `-m "not postgres"`) leaves
the slow drills out here, so pyproject's addopts need not change; an expression that mentions it (`-m slow`,
`-m "slow or not slow"`) decides for itself.

Each drill prints its figures (counts, times) on one line starting with `DRILL`; run with `-s` to see them.
"""

from __future__ import annotations

from pathlib import Path

# `from conftest import shared_corpus` in any test module finds this conftest in a full run: the same names
from shared_corpora import SHARED, shared_corpus, shared_path  # noqa: F401
from slow_parts import deselect_slow_under

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    deselect_slow_under(HERE, config, items)
