"""A full disk during training: one line (GhostwriteError, exit 2 on the CLI), the last good checkpoint
intact, no temporary file left behind, and `--resume` finishes the run once there is room again.

The disk is simulated by a stand-in for `os` in generator/paths.py (where every atomic write goes):
once armed, a write raises ENOSPC after the bytes that still fit, as a full filesystem does. Where this
process may mount a tmpfs (root with CAP_SYS_ADMIN), the same is checked on a real, tiny filesystem
through the command line.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import generator.paths
from generator import checkpoint
from generator.errors import GhostwriteError
from generator.training.trainer import TrainConfig, train


class FullDisk:
    """`os` for generator/paths.py, with `free` bytes left (None: unlimited); `arm_after` names a file
    whose first completed write leaves only `then_free` bytes."""

    def __init__(self, free: int | None = None, arm_after: str | None = None, then_free: int = 0):
        self.free, self.arm_after, self.then_free, self.hits = free, arm_after, then_free, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *a, **kw):
        return _Limited(os.fdopen(fd, mode, *a, **kw), self)

    def replace(self, src, dst):
        os.replace(src, dst)
        if self.arm_after and Path(dst).name == self.arm_after:
            self.arm_after, self.free = None, self.then_free


class _Limited:
    def __init__(self, f, disk: FullDisk):
        self._f, self._disk = f, disk

    def write(self, data) -> int:
        disk = self._disk
        if disk.free is not None and len(data) > disk.free:
            self._f.write(data[: disk.free])  # what still fits, then the error a full filesystem gives
            disk.free, disk.hits = 0, disk.hits + 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if disk.free is not None:
            disk.free -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_checkpoint_write_that_runs_out_of_space_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    good = {"model": {"w": torch.arange(10_000, dtype=torch.float32)}}
    checkpoint.save(path, good, {"progress": {"step": 5}})
    with monkeypatch.context() as m, pytest.raises(OSError) as info:
        m.setattr(generator.paths, "os", FullDisk(free=20_000))
        checkpoint.save(path, {"model": {"w": torch.zeros(10_000)}}, {"progress": {"step": 10}})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)  # says which file
    state, meta = checkpoint.load(path)
    assert meta["progress"]["step"] == 5 and torch.equal(state["model"]["w"], good["model"]["w"])
    assert leftovers(tmp_path) == []


def test_full_disk_during_training_is_one_line_and_resume_finishes(tiny_corpus, fresh_home, monkeypatch):
    cfg = dict(corpus=str(tiny_corpus), name="full", preset="tiny", max_steps=20, checkpoint_every=5,
               eval_every=100, batch_size=8, seq_len=32, lr=1e-2, device="cpu")
    disk = FullDisk(arm_after="last.pt", then_free=4096)  # room for progress notes, not for a checkpoint
    with monkeypatch.context() as m, pytest.raises(GhostwriteError) as info:
        m.setattr(generator.paths, "os", disk)
        train(TrainConfig(**cfg))
    message = str(info.value)
    assert disk.hits == 1 and "\n" not in message
    assert "No space left on device" in message and "step 5" in message and "--resume" in message
    folder = fresh_home / "runs" / "full"
    state, meta = checkpoint.load(folder / "last.pt")
    assert meta["progress"]["step"] == 5 and leftovers(folder) == []
    card = train(TrainConfig(**cfg, resume=True))
    assert card["steps"] == 20 and card["version"] == 1


def test_full_disk_before_any_checkpoint_says_there_is_nothing_to_resume(tiny_corpus, fresh_home, monkeypatch):
    monkeypatch.setattr(generator.paths, "os", FullDisk(arm_after="run.json", then_free=0))
    with pytest.raises(GhostwriteError, match="No space left on device.*train again"):
        train(TrainConfig(corpus=str(tiny_corpus), name="full0", preset="tiny", max_steps=20, checkpoint_every=5,
                          batch_size=8, seq_len=32, device="cpu"))


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 800 KiB tmpfs (room for the run and one checkpoint, not two), or a skip where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=800k", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.slow  # two runs of the command (~10 s each on a busy 2-core machine)
def test_cli_on_a_real_full_filesystem(tiny_corpus, tiny_tmpfs):
    env = {**os.environ, "GHOSTWRITE_HOME": str(tiny_tmpfs), "GHOSTWRITE_THREADS": "1"}
    args = [sys.executable, "-m", "bot.cli", "train", str(tiny_corpus), "--name", "e", "--preset", "tiny",
            "--max-steps", "20", "--checkpoint-every", "5", "--batch-size", "8", "--seq-len", "32",
            "--eval-every", "100", "--quiet"]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "No space left on device" in p.stderr
    folder = tiny_tmpfs / "runs" / "e"
    _, meta = checkpoint.load(folder / "last.pt")
    assert meta["progress"]["step"] == 5 and leftovers(folder) == []
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_tmpfs)], check=True)  # room again
    p = subprocess.run(args + ["--resume", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert '"steps": 20' in p.stdout
