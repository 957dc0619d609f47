"""Drill (e): a malicious checkpoint (a pickle that would run code) is refused without running anything, on
every path that reads one: the registry (`generator.load`, so every frontend through the service), fine-tuning
from a registered model (`--from`), and resuming a run (`--resume`).

(tests/test_checkpoint_registry.py covers `checkpoint.load` itself.) Each payload would create a marker file
if it ran (a control loads two of them unsafely and sees the marker); the drill checks that none appeared
and that each refusal is one GhostwriteError line.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from drillkit import report

import generator
from generator.errors import GhostwriteError


class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def payloads(marker: Path, good: bytes) -> dict[str, bytes]:
    """Malicious model.pt files: torch zip format and legacy pickles, alone or hidden among real weights."""
    out = {}
    buf = io.BytesIO()
    torch.save({"meta": "{}", "model": _System(marker)}, buf)
    out["zip-os.system"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"meta": "{}", "x": _Exec(marker)}, buf)
    out["zip-builtins.exec"] = buf.getvalue()
    good_obj = torch.load(io.BytesIO(good), weights_only=True)
    buf = io.BytesIO()
    torch.save({**good_obj, "extra": _System(marker)}, buf)  # real weights plus one poisoned entry
    out["zip-real-weights+os.system"] = buf.getvalue()
    out["legacy-pickle-os.system"] = pickle.dumps({"meta": "{}", "model": _System(marker)}, protocol=2)
    out["legacy-pickle-exec"] = pickle.dumps(_Exec(marker), protocol=2)
    # a torch zip whose data.pkl was swapped for a code-running pickle
    src = zipfile.ZipFile(io.BytesIO(good))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps({"meta": "{}", "model": _System(marker)}, protocol=2)
            dst.writestr(item, data)
    out["zip-swapped-data.pkl"] = buf.getvalue()
    return out


def _refused(fn) -> str:
    with pytest.raises(GhostwriteError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_malicious_model_files_are_refused_on_every_load_path(tiny_model, tiny_corpus, session_home, fresh_home):
    from bot.service import ContinuationService, Request
    from bot.store import Store
    from generator.training.trainer import TrainConfig, train

    src = session_home / "models" / "tiny" / f"v{tiny_model['version']}"
    good = (src / "model.pt").read_bytes()
    marker = fresh_home / "pwned"
    files = payloads(marker, good)
    store = Store(f"sqlite:///{fresh_home}/drill.db")
    svc = ContinuationService(store=store, workers=1)
    refusals = {}
    # a resumable run whose last.pt is then poisoned
    train(TrainConfig(corpus=str(tiny_corpus), name="victim", preset="tiny", max_steps=4, batch_size=8, seq_len=32,
                      checkpoint_every=2, device="cpu"))
    try:
        for i, (kind, data) in enumerate(files.items()):
            name = f"evil{i}"
            dst = fresh_home / "models" / name / "v1"
            shutil.copytree(src, dst)
            (dst / "model.pt").write_bytes(data)
            refusals[f"{kind} load"] = _refused(lambda: generator.load(name))  # noqa: B023 (called at once)
            refusals[f"{kind} service"] = _refused(lambda: svc.run(Request(prompt="KING:", model=name)))  # noqa: B023
            refusals[f"{kind} --from"] = _refused(lambda: train(TrainConfig(
                corpus=str(tiny_corpus), name=f"ft{i}", base=name, max_steps=2, device="cpu")))  # noqa: B023
            (fresh_home / "runs" / "victim" / "last.pt").write_bytes(data)
            refusals[f"{kind} --resume"] = _refused(lambda: train(TrainConfig(
                corpus=str(tiny_corpus), name="victim", preset="tiny", max_steps=4, batch_size=8, seq_len=32,
                device="cpu", resume=True)))
            assert not marker.exists(), f"{kind}: the payload ran"
        assert store.list_generations(limit=None) == []  # a refused model never generates
    finally:
        svc.close()
        store.close()
    # control: the payloads are live (an unsafe loader does run them)
    control = fresh_home / "control"
    live = payloads(control, good)
    torch.load(io.BytesIO(live["zip-os.system"]), weights_only=False)
    assert control.exists()
    control.unlink()
    pickle.loads(live["legacy-pickle-exec"])
    assert control.exists()
    unsafe = sum(1 for m in refusals.values() if "unsafe" in m or "corrupt" in m)
    report("malicious-checkpoint", payloads=len(files), load_paths=4, refusals=len(refusals),
           said_unsafe_or_corrupt=unsafe, payloads_run=0, control_unsafe_loads_ran=2)
    assert unsafe == len(refusals), {k: v for k, v in refusals.items() if "unsafe" not in v and "corrupt" not in v}
