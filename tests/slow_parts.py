"""Folders whose long tests are marked `slow` (tests/drills, tests/adversarial) keep them out of a run whose
`-m` expression does not mention `slow` (the default run, or e.g. `-m "not postgres"`, which replaces
pyproject's `not slow`); an expression that mentions it (`-m slow`, `make drills`) decides for itself."""

from __future__ import annotations

from pathlib import Path


def deselect_slow_under(folder: Path, config, items) -> None:
    """The conftest.py of `folder` calls this from pytest_collection_modifyitems."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    slow = [it for it in items if it.get_closest_marker("slow") and folder in Path(str(it.fspath)).parents]
    if slow:
        config.hook.pytest_deselected(items=slow)
        gone = {id(it) for it in slow}
        items[:] = [it for it in items if id(it) not in gone]
