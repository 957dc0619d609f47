"""Checkpoints are plain data written atomically; the registry publishes whole versions."""

from __future__ import annotations

import os

import pytest
import torch

import generator
from generator import checkpoint, registry
from generator.errors import GhostwriteError


def test_round_trip_and_atomic_replace(tmp_path):
    path = tmp_path / "ck.pt"
    checkpoint.save(path, {"w": torch.arange(5)}, {"step": 1})
    checkpoint.save(path, {"w": torch.arange(6)}, {"step": 2})
    state, meta = checkpoint.load(path)
    assert meta == {"step": 2} and state["w"].tolist() == list(range(6))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp files left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ck.pt"
    checkpoint.save(path, {"w": torch.zeros(1000)}, {"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GhostwriteError, match="corrupt or truncated"):
        checkpoint.load(path)


class Boom:
    def __reduce__(self):
        return (os.system, ("touch " + str(MARKER),))


MARKER = None


def test_malicious_pickle_is_refused_without_running(tmp_path):
    global MARKER
    MARKER = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"meta": "{}", "x": Boom()}, path)
    with pytest.raises(GhostwriteError, match="unsafe"):
        checkpoint.load(path)
    assert not MARKER.exists()


def test_registry_versions_and_removal(fresh_home):
    v1 = registry.register("m", {"model.pt": b"a"}, {"k": 1})
    v2 = registry.register("m", {"model.pt": b"b"}, {"k": 2})
    assert (v1, v2) == (1, 2)
    assert registry.resolve("m") == ("m", 2)
    assert registry.resolve("m@v1") == ("m", 1)
    assert registry.read_card("m", 1)["k"] == 1
    with pytest.raises(GhostwriteError, match="no version v7"):
        registry.resolve("m@v7")
    with pytest.raises(GhostwriteError, match="unknown model"):
        registry.resolve("nope")
    with pytest.raises(GhostwriteError, match="invalid model name"):
        registry.check_name("../etc")
    assert registry.remove("m", 2) == [2]
    assert registry.resolve("m") == ("m", 1)
    assert not any(p.name.startswith(".") for p in (fresh_home / "models" / "m").iterdir())


def test_gpu_style_checkpoint_loads_on_cpu(tiny_model):
    """Weights are stored on the CPU and mapped on load, so GPU-trained models load anywhere."""
    folder = registry.model_dir("tiny", tiny_model["version"])
    state, meta = checkpoint.load(folder / "model.pt", map_location="cpu")
    assert all(t.device.type == "cpu" for t in state["model"].values())


def test_corrupt_model_file_gives_clear_error(tiny_model, session_home, fresh_home):
    import shutil

    src = session_home / "models" / "tiny" / f"v{tiny_model['version']}"
    dst = fresh_home / "models" / "broken" / "v1"
    shutil.copytree(src, dst)
    (dst / "model.pt").write_bytes(b"not a zip")
    with pytest.raises(GhostwriteError, match="corrupt"):
        generator.load("broken")
