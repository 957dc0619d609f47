"""Training on several processes with DistributedDataParallel: NCCL on GPUs, gloo on CPUs.

Two ways in, one code path:

* ``ghostwrite train ... --nproc N`` calls `launch`, which starts N copies of ``python -m generator.training.main``
  with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT on a free port),
  waits for them, stops them all if one fails, and returns rank 0's model card.
* ``torchrun --nproc-per-node N -m bot.cli train CORPUS ...`` sets those variables itself.

Either way the trainer calls `setup()`, which joins the process group when WORLD_SIZE > 1. Then:

* only rank 0 prepares the run (split, tokenizer, token files) and picks the sizes (`autosize` times the
  device); the other ranks wait for it and read the same files (`prepare`, `from_main`);
* each rank reads its own `batch_size` streams of the token file (`StreamBatcher(rank=, world_size=)`), so
  the effective batch is `batch_size × world_size`;
* gradients are averaged by DDP; the model, the optimizer and the schedule stay identical on every rank;
* everything the loop decides from the clock or from validation (stop now, the total steps calibrated
  from the step time, warm-up, validation interval, early stopping) is rank 0's decision, sent to the
  others once per step (`Dist.agree`) and at each validation (`Dist.share_validation`), so every rank
  leaves the loop at the same step and none is stranded waiting for the rest;
* only rank 0 validates, writes checkpoints, progress and the registry. `--resume` works the same: every
  rank loads rank 0's checkpoint.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch

from ..errors import GhostwriteError

ENV_RESULT = "GHOSTWRITE_DDP_RESULT"  # launcher → child: where the child writes its outcome (JSON)


def env_world_size(environ=os.environ) -> int:
    try:
        return int(environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        return 1


class Dist:
    """This process's place in the group and the few collectives the trainer needs."""

    def __init__(self, rank: int, world_size: int, local_rank: int, backend: str, device: torch.device):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.backend, self.device = backend, device
        self.is_main = rank == 0

    # ---- plumbing -------------------------------------------------------------------------------------
    def broadcast_object(self, obj=None):
        """Rank 0's `obj` on every rank (pickled; for small set-up values, not per-step traffic)."""
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    # ---- the decisions every rank must share ----------------------------------------------------------
    def _broadcast(self, values: list, dtype) -> list:
        import torch.distributed as dist

        t = torch.tensor(values, dtype=dtype)
        if self.backend == "nccl":
            t = t.to(self.device)
        dist.broadcast(t, src=0)
        return t.tolist()

    def agree(self, trainer, stop: bool) -> bool:
        """Called by every rank once per step, before the step: rank 0's `stop` (from its clock and the
        total steps) and its schedule (total steps, warm-up, validation interval) become everyone's."""
        sched = trainer.meta.setdefault("schedule", {})
        stop_i, total, warm, ev = self._broadcast(
            [int(bool(stop)), sched.get("total_steps") or 0, sched.get("warmup_steps") or 0,
             sched.get("eval_every") or 0], torch.int64)
        if not self.is_main:
            sched["total_steps"] = total or None
            if warm:
                sched["warmup_steps"] = warm
            if ev:
                sched["eval_every"] = ev
            else:
                sched.pop("eval_every", None)
        return bool(stop_i)

    def share_validation(self, trainer) -> float:
        """At each validation in the loop, on every rank: rank 0 has scored the model; the others take its
        figures, so that the early-stopping test (`bad_evals >= patience`) gives the same answer
        everywhere. Returns the validation bits/char."""
        best = trainer.best if math.isfinite(trainer.best) else -1.0
        bpc = getattr(trainer, "last_val_bpc", None)
        bad, best, bpc = self._broadcast([float(trainer.bad_evals), best, -1.0 if bpc is None else bpc],
                                         torch.float64)
        if not self.is_main:
            trainer.bad_evals = int(bad)
            trainer.best = best if best >= 0 else math.inf
            trainer.last_val_bpc = bpc
            trainer.last_val_step = trainer.step
        return bpc

    def finish(self, trainer) -> bool:
        """After the loop, which every rank leaves at the same step. Rank 0 goes on alone (final
        validation, int8 check, publishing: no more collectives), so it leaves the group's bookkeeping;
        the others are done. Returns True on rank 0."""
        if self.is_main:
            trainer.dist = None
        return self.is_main


_current: Dist | None = None


def current() -> Dist | None:
    return _current


def _timeout() -> timedelta:
    return timedelta(seconds=float(os.environ.get("GHOSTWRITE_DIST_TIMEOUT", 3600)))


def setup(device: torch.device) -> tuple[Dist | None, torch.device]:
    """Join the process group when this process is one of several (WORLD_SIZE > 1). Returns the group
    (None when alone) and the device this rank trains on (its own GPU on CUDA)."""
    global _current
    world = env_world_size()
    if world <= 1:
        return None, device
    if _current is not None:
        return _current, _current.device
    import atexit

    import torch.distributed as dist

    if device.type not in ("cpu", "cuda"):
        raise GhostwriteError(f"training on several processes needs CUDA GPUs or the CPU, not {device.type}")
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise GhostwriteError(f"rank {rank} wants GPU {local_rank}, but only {torch.cuda.device_count()} "
                                  "are visible; use --nproc at most the number of GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
        spec = "cpu:gloo,cuda:nccl"  # small CPU objects (set-up values) go over gloo
    else:
        backend = spec = "gloo"
        if not os.environ.get("GHOSTWRITE_THREADS"):  # share the cores instead of oversubscribing them
            cores = len(os.sched_getaffinity(0))
            os.environ["GHOSTWRITE_THREADS"] = str(max(1, cores // max(1, local_world)))
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(var):
            raise GhostwriteError(f"WORLD_SIZE is {world} but {var} is not set: launch with torchrun or --nproc")
    try:
        dist.init_process_group(spec, rank=rank, world_size=world, timeout=_timeout())
    except (RuntimeError, ValueError) as e:
        raise GhostwriteError(f"could not join the training group (rank {rank} of {world}): "
                              f"{str(e).strip().splitlines()[0][:200]}") from None
    atexit.register(_teardown)
    _current = Dist(rank, world, local_rank, backend, device)
    return _current, device


def _teardown() -> None:
    global _current
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass
    _current = None


def from_main(d: Dist | None, fn: Callable, *args, **kwargs):
    """`fn(*args)` on rank 0, its result on every rank. A GhostwriteError on rank 0 is raised everywhere
    (the other ranks would otherwise wait for a value that never comes)."""
    if d is None:
        return fn(*args, **kwargs)
    if d.is_main:
        try:
            value = fn(*args, **kwargs)
        except GhostwriteError as e:
            d.broadcast_object(("error", str(e)))
            raise
        except BaseException as e:
            d.broadcast_object(("error", f"rank 0 failed: {type(e).__name__}: {e}"))
            raise
        d.broadcast_object(("ok", value))
        return value
    kind, value = d.broadcast_object()
    if kind == "error":
        raise GhostwriteError(value)
    return value


def prepare(cfg, d: Dist | None):
    """The run's inputs: rank 0 prepares them (`runs.prepare`); the others wait, then read them."""
    from . import runs

    if d is None:
        return runs.prepare(cfg)
    if d.is_main:
        holder = {}

        def work():
            holder["run"] = runs.prepare(cfg)
            return True

        from_main(d, work)
        return holder["run"]
    from_main(d, lambda: None)
    return runs.prepare(replace(cfg, resume=True), lock=False)  # read what rank 0 wrote, under its lock


def shard(d: Dist | None) -> dict:
    """StreamBatcher's keyword arguments for this rank."""
    return {} if d is None else {"rank": d.rank, "world_size": d.world_size}


def wrap(trainer):
    """After set-up (weights built, loaded or resumed): the module the training step calls. Alone: the
    model itself. In a group: the model in DistributedDataParallel, which starts from rank 0's weights.
    Ranks other than 0 draw their own dropout masks and start their own streams' hidden state."""
    d = getattr(trainer, "dist", None)
    tr = trainer.meta.get("train")
    if d is None:
        if isinstance(tr, dict):
            tr.pop("world_size", None)
        return trainer.model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if isinstance(tr, dict):
        tr["world_size"] = d.world_size
    if not d.is_main:
        torch.manual_seed(trainer.cfg.seed + 7919 * d.rank + trainer.step)
        trainer.hidden = None  # the checkpoint holds rank 0's streams' state only
    ids = [trainer.device.index] if trainer.device.type == "cuda" else None
    return DDP(trainer.model, device_ids=ids)


# ---- the launcher -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # in the child, before exec: SIGKILL when the launcher dies (Linux)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_name(cfg) -> str | None:
    """The run folder's name, as runs.prepare will choose it (for following progress.json)."""
    from .. import registry

    try:
        if cfg.name:
            return cfg.name
        if cfg.base:
            return registry.parse_spec(cfg.base)[0]
        from ..corpora.corpus import load_corpus

        return load_corpus(cfg.corpus).name
    except GhostwriteError:
        return None


def launch(cfg, nproc: int, on_progress: Callable[[dict], None] | None = None,
           master_port: int | None = None) -> dict:
    """Train `cfg` on `nproc` processes of this machine and return the new version's card."""
    from ..paths import runs_dir

    if nproc < 1:
        raise GhostwriteError(f"--nproc must be at least 1, got {nproc}")
    if env_world_size() > 1:
        raise GhostwriteError("--nproc cannot be used inside torchrun (it already started the processes)")
    from ..device import pick

    device = pick(cfg.device)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise GhostwriteError(f"--nproc {nproc} but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    if device.type not in ("cpu", "cuda"):
        raise GhostwriteError(f"--nproc needs CUDA GPUs or the CPU, not {device.type}")
    if cfg.threads is None and device.type == "cpu":
        from ..env import threads

        per = threads() or len(os.sched_getaffinity(0))
        cfg = replace(cfg, threads=max(1, per // nproc))
    work = Path(tempfile.mkdtemp(prefix="ghostwrite-ddp-"))
    (work / "config.json").write_text(json.dumps(asdict(cfg)), encoding="utf-8")
    port = master_port or free_port()
    procs: list[subprocess.Popen] = []
    name = run_name(cfg) if on_progress else None
    t0 = time.time()
    try:
        for rank in range(nproc):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
                   "LOCAL_WORLD_SIZE": str(nproc), "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(port), ENV_RESULT: str(work / f"rank{rank}.json"), "PYTHONUNBUFFERED": "1"}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "generator.training.main", "--config-json", str(work / "config.json")],
                env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), preexec_fn=_die_with_parent,
            ))  # fmt: skip
        failed = None
        seen = None
        while True:
            codes = [p.poll() for p in procs]
            bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if all(c == 0 for c in codes):
                break
            if name and on_progress:
                p = _read_json(runs_dir() / name / "progress.json")
                if p and p.get("time", 0) >= t0 and p != seen:
                    seen = p
                    on_progress(p)
            time.sleep(0.2)
        if failed is not None:
            _stop_all(procs)
            raise GhostwriteError(_failure_message(work, nproc, failed))
        result = _read_json(work / "rank0.json") or {}
        if "card" not in result:
            raise GhostwriteError(result.get("error") or "training finished without a model card from rank 0")
        if name and on_progress:
            p = _read_json(runs_dir() / name / "progress.json")
            if p:
                on_progress(p)
        return result["card"]
    finally:
        _stop_all(procs)
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


def _stop_all(procs: list[subprocess.Popen]) -> None:
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _failure_message(work: Path, nproc: int, failed: tuple[int, int]) -> str:
    for rank in range(nproc):  # rank 0's own words first: it is the one that decides
        err = (_read_json(work / f"rank{rank}.json") or {}).get("error")
        if err:
            return err
    rank, code = failed
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"training process rank {rank} {how}"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_result(payload: dict) -> None:
    """In a launched child: its outcome for the launcher (card or error)."""
    path = os.environ.get(ENV_RESULT)
    if not path:
        return
    from ..paths import atomic_write_text

    atomic_write_text(Path(path), json.dumps(payload, ensure_ascii=False))
