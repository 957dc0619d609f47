"""What the service's door reads from the registry on every request is cached until the registry changes
(issue 14, item 2): the newest model (no model asked for) and a card's style defaults."""

from __future__ import annotations

import json
import shutil

import pytest

from bot.service import ContinuationService, GhostwriteError, Request
from generator import paths, registry


def _copy_model(src_home, name: str, created: str) -> None:
    dst = paths.models_dir() / name / "v1"
    shutil.copytree(src_home / "models" / "tiny" / "v1", dst)
    card = json.loads((dst / "card.json").read_text())
    card.update(name=name, created=created)
    (dst / "card.json").write_text(json.dumps(card))


def test_the_newest_model_follows_a_publish(tiny_model, session_home, fresh_home):
    svc = ContinuationService(store=None)
    _copy_model(session_home, "older", "2026-01-01T00:00:00")
    assert svc.resolve(None) == ("older", 1)
    assert svc.resolve(None) == ("older", 1)  # (cached: the folders did not change)
    _copy_model(session_home, "newer", "2026-06-01T00:00:00")
    assert svc.resolve(None) == ("newer", 1)
    shutil.rmtree(paths.models_dir() / "newer")
    assert svc.resolve(None) == ("older", 1)


def test_a_cards_style_defaults_follow_its_rewrite(tiny_model, session_home, fresh_home):
    svc = ContinuationService(store=None)
    _copy_model(session_home, "styled", "2026-01-01T00:00:00")
    req = lambda: Request("K", model="styled", settings={"length": 5})  # noqa: E731
    base = svc.prepare(req()).settings.temperature
    registry.update_card("styled", 1, {"style": {"defaults": {"temperature": 0.55}}})
    assert svc.prepare(req()).settings.temperature == 0.55 != base
    registry.update_card("styled", 1, {"style": {"defaults": {"temperature": 0.65}}})
    assert svc.prepare(req()).settings.temperature == 0.65
    assert svc.prepare(Request("K", model="styled", settings={"temperature": 0.9})).settings.temperature == 0.9


def test_a_name_resolves_to_its_newest_version_after_a_publish_and_a_removal(tiny_model, session_home, fresh_home):
    svc = ContinuationService(store=None)
    _copy_model(session_home, "grows", "2026-01-01T00:00:00")
    assert svc.resolve("grows") == ("grows", 1)
    shutil.copytree(paths.models_dir() / "grows" / "v1", paths.models_dir() / "grows" / "v2")
    assert svc.resolve("grows") == ("grows", 2) and svc.resolve("grows@v1") == ("grows", 1)
    shutil.rmtree(paths.models_dir() / "grows" / "v2")
    assert svc.resolve("grows") == ("grows", 1)
    with pytest.raises(GhostwriteError, match="unknown model"):
        svc.resolve("nothing")
    with pytest.raises(GhostwriteError, match="invalid model"):
        svc.resolve("../x")
