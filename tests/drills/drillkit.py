"""Helpers shared by the drills (imported as `drillkit`: pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GW = [sys.executable, "-m", "bot.cli"]


def report(name: str, **figures) -> str:
    """One quotable line of figures, printed (visible with -s) and returned."""
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()]
    line = f"DRILL {name}: " + ", ".join(parts)
    print("\n" + line, flush=True)
    return line


def env(home, **extra) -> dict:
    return {**os.environ, "GHOSTWRITE_HOME": str(home), "GHOSTWRITE_THREADS": "1", "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in extra.items()}}


def integrity(db_path) -> str:
    """`PRAGMA integrity_check` straight through sqlite3 (not the store), as an operator would run it."""
    con = sqlite3.connect(str(db_path), timeout=30)
    try:
        return ";".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()


ZYGOTE = r"""
import json, os, sys, traceback
import numpy, torch, torch._dynamo                     # the expensive imports, paid once (AdamW pulls in dynamo)
import bot.cli, bot.cli.train, generator.training.trainer, generator.training.runs, generator.generation.loaded
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot
out = os.fdopen(os.dup(1), "w", buffering=1)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the child: a whole process running the CLI, as `python -m bot.cli train ARGS` would
        code = 1
        try:
            os.environ.update(req["env"])
            for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            sys.argv = ["ghostwrite", "train", *req["args"]]
            code = bot.cli.run(["train", *req["args"]]) or 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code)
    out.write(json.dumps({"pid": pid}) + "\n")
    _, status = os.waitpid(pid, 0)
    out.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
"""


class Zygote:
    """A process that has imported torch and the trainer once and forks a fresh child for every training
    command (what `python -m bot.cli train ARGS` does, without ~5-10 s of imports on a busy
    machine each time). The children are whole processes: SIGKILL them like any other."""

    def __init__(self, home):
        import json as _json
        import subprocess

        self._json = _json
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], env=env(home), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def start(self, args: list[str], home, workdir) -> "ZygoteChild":
        workdir = Path(workdir)
        n = len(list(workdir.glob("out-*.txt")))
        req = {"args": list(args), "env": {"GHOSTWRITE_HOME": str(home)},
               "stdout": str(workdir / f"out-{n}.txt"), "stderr": str(workdir / f"err-{n}.txt")}
        self.proc.stdin.write(self._json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return ZygoteChild(self, self._json.loads(line)["pid"], Path(req["stdout"]), Path(req["stderr"]))

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()


class ZygoteChild:
    def __init__(self, zygote: Zygote, pid: int, stdout: Path, stderr: Path):
        self.zygote, self.pid, self.stdout_path, self.stderr_path = zygote, pid, stdout, stderr
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
                state = Path(f"/proc/{self.pid}/stat").read_text().split(") ")[1][0]
            except (ProcessLookupError, OSError, IndexError):
                state = "Z"
            if state == "Z":  # finished: the zygote reaps it and reports its code
                self.wait()
        return self.returncode

    def send_signal(self, sig) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None):
        if self.returncode is None and timeout is not None:
            import signal
            import time

            deadline = time.monotonic() + timeout
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.returncode is None:
                self.send_signal(signal.SIGKILL)
        if self.returncode is None:
            line = self.zygote.proc.stdout.readline()
            assert line, "the zygote died"
            self.returncode = self.zygote._json.loads(line)["exit"]
        return self.returncode

    def communicate(self, timeout=None):
        self.wait(timeout)
        return (self.stdout_path.read_text(encoding="utf-8", errors="replace"),
                self.stderr_path.read_text(encoding="utf-8", errors="replace"))
