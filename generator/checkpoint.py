"""Checkpoints: state dicts and JSON only, written atomically, read with `weights_only=True`.

A checkpoint file is a dict of tensors / state dicts plus one JSON string (`meta`). Writing goes through
a temporary file, fsync and rename, so a run killed at any moment leaves either the previous checkpoint
or the new one, never a torn file. Reading refuses anything that is not plain data: a pickle that would
run code is rejected by torch's weights-only unpickler before it can do anything.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import GhostwriteError
from .paths import atomic_write_bytes


def save(path: Path, state: dict, meta: dict) -> None:
    """A write that fails part-way (a full disk) leaves the previous file intact and no temporary file;
    its OSError names the checkpoint."""
    buf = io.BytesIO()
    torch.save({**state, "meta": json.dumps(meta)}, buf)
    try:
        atomic_write_bytes(Path(path), buf.getvalue())
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e


def load(path: Path, map_location="cpu") -> tuple[dict, dict]:
    """Returns (state, meta). Any unreadable, truncated or unsafe file is one clear GhostwriteError."""
    path = Path(path)
    if not path.exists():
        raise GhostwriteError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GhostwriteError(f"refusing unsafe or corrupt checkpoint {path}: {first[:200]}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GhostwriteError(f"corrupt or truncated checkpoint {path}: {first[:200]}") from None
    if not isinstance(obj, dict) or "meta" not in obj:
        raise GhostwriteError(f"not a ghostwrite checkpoint: {path}")
    try:
        meta = json.loads(obj.pop("meta"))
    except (TypeError, ValueError):
        raise GhostwriteError(f"corrupt checkpoint metadata: {path}") from None
    return obj, meta
