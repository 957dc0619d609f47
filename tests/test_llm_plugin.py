"""The `llm` plugin (issue 13): the real `llm` package finds ghostwrite's models as `ghostwrite/NAME`,
streams a continuation with the contract's options, and the row is stored with source `llm`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

llm = pytest.importorskip("llm")
LLM = shutil.which("llm", path=str(Path(sys.executable).parent)) or shutil.which("llm")


@pytest.fixture
def env(tiny_model, tmp_path, session_home):
    return {**os.environ, "LLM_USER_PATH": str(tmp_path / "llm"), "GHOSTWRITE_HOME": str(session_home)}


def rows():
    from bot.service import ContinuationService

    with ContinuationService() as svc:
        return svc.history(source="llm", limit=None)


@pytest.mark.skipif(LLM is None, reason="no llm command")
def test_llm_command_streams_and_stores(env):
    listed = subprocess.run([LLM, "models"], env=env, capture_output=True, text=True, timeout=120)
    assert "ghostwrite/tiny" in listed.stdout, listed.stderr
    before = len(rows())
    p = subprocess.run([LLM, "-m", "ghostwrite/tiny", "ROMEO:", "-o", "length", "40", "-o", "seed", "7",
                        "-o", "temperature", "0.6"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    new = rows()
    assert len(new) == before + 1
    row = new[0]
    assert row.prompt == "ROMEO:" and len(row.output) == 40 and p.stdout == row.output + "\n"
    assert row.params["seed"] == 7 and row.params["temperature"] == 0.6 and row.status == "complete"
    # a bad option is the contract's message, and nothing is stored
    bad = subprocess.run([LLM, "-m", "ghostwrite/tiny", "x", "-o", "temperature", "-1"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "temperature must be between 0 and 10" in bad.stderr
    assert len(rows()) == before + 1


def test_llm_python_api_streams_pieces(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    model = llm.get_model("ghostwrite/tiny")
    from bot.service import SETTINGS

    assert set(model.Options.model_fields) == {s.name for s in SETTINGS}  # every setting of the contract
    response = model.prompt("ROMEO:", length=300, unit="chars", seed=1)
    pieces = list(response)
    assert len(pieces) >= 2 and len("".join(pieces)) == 300
    assert response.response_json["finish_reason"] == "length"
    assert rows()[0].output == "".join(pieces)


def test_llm_conversation_grows_the_story(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    conversation = llm.get_model("ghostwrite/tiny").conversation()
    first = conversation.prompt("ROMEO:", length=30, seed=2).text()
    second = conversation.prompt("\nJULIET:", length=30, seed=3).text()
    assert len(first) == len(second) == 30
    row = rows()[0]
    assert row.prompt.endswith("ROMEO:" + first + "\nJULIET:") and row.output == second
