"""Fixtures for the HTTP API tests (`ghostwrite serve`): one real service and one real server on a free
loopback port per test module (apiserver.running), and `held` streams that stop after their first piece."""

from __future__ import annotations

import pytest
from apiserver import holding, running

# `from conftest import shared_corpus` in any test module may find this conftest in a full run: the same names
from shared_corpora import SHARED, shared_corpus, shared_path  # noqa: F401


@pytest.fixture(scope="module")
def svc(tiny_model):
    from bot.service import ContinuationService

    with ContinuationService(workers=24) as s:
        yield s


@pytest.fixture(scope="module")
def base(svc):
    with running(service=svc) as url:
        yield url


@pytest.fixture
def held(svc):
    """`svc`'s streams hold after their first piece until the yielded event is set (apiserver.holding)."""
    with holding(svc) as release:
        yield release
