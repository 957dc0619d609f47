"""The lock a training run holds on its name, for as long as one process prepares, trains and publishes it.

`<home>/runs/.NAME.lock` beside the run folder (inside it, a new run's `rmtree` would delete a held lock's
file and let a third run lock a fresh one). An flock: the kernel drops it when the holder dies, however it
dies, so a run killed with SIGKILL can be resumed at once, and there is no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import os
import threading

from ..errors import GhostwriteError
from ..paths import runs_dir

_HELD: dict[str, list] = {}  # lock file → [descriptor, holders] in this process
_HELD_GUARD = threading.Lock()


class RunLock:
    """An exclusive flock on `<runs>/.NAME.lock` while this process prepares, trains and publishes NAME:
    a second `train NAME` (or `--resume`) elsewhere stops in one line instead of preparing the folder
    again under the first (two runs of one name once published one's weights with the other's
    tokenizer). The kernel drops the lock when the process dies, however it dies (kill -9 included), so
    a killed run can be resumed at once. Within one process it is shared (counted)."""

    def __init__(self, name: str):
        self.held = False
        root = runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        self.path = str(root / f".{name}.lock")
        with _HELD_GUARD:
            entry = _HELD.get(self.path)
            if entry is None:
                entry = _HELD[self.path] = [_acquire(self.path, name), 0]
            entry[1] += 1
            self.held = True

    def release(self) -> None:
        with _HELD_GUARD:
            if not self.held:
                return
            self.held = False
            entry = _HELD[self.path]
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[self.path]
                os.close(entry[0])

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter exit the kernel lets go anyway
            pass


def _acquire(path: str, name: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise GhostwriteError(f"cannot lock the run of {name!r} ({path}): {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (process {holder})" if holder.isdigit() else ""
        raise GhostwriteError(f"{name!r} is already being trained{who}: wait for that run to end, or train "
                              "under another --name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd
