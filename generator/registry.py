"""The model registry: `<home>/models/NAME/vN/` holds one trained version of a model.

Each version folder has `model.pt` (state dict + JSON, see checkpoint.py), `tokenizer.json` and
`card.json` (corpus and its sha256, tokenizer, sizes, parameter count, validation bits/char, training
time, device, created). A version is assembled in a temporary folder and renamed into place, so a
reader never sees half a version, and a new version is visible to running servers the moment it lands.
The publisher holds an flock on its staging folder; one whose publisher died (kill -9) is removed at the
next publish (or resume) of that name.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import GhostwriteError
from .paths import atomic_write_text, fsync_dir, models_dir

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
SPEC_RE = re.compile(r"^(?P<name>[^@]+?)(?:@v?(?P<version>\d+))?$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise GhostwriteError(
            f"invalid model name {name!r}: use letters, digits, '-', '_' or '.', at most 64 characters"
        )
    return name


def versions(name: str) -> list[int]:
    folder = models_dir() / name
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if p.is_dir() and re.fullmatch(r"v\d+", p.name) and (p / "card.json").exists():
            found.append(int(p.name[1:]))
    return sorted(found)


def latest_version(name: str) -> int | None:
    v = versions(name)
    return v[-1] if v else None


def parse_spec(spec: str) -> tuple[str, int | None]:
    m = SPEC_RE.match((spec or "").strip()) if isinstance(spec, str) else None
    if not m or len(m.group("version") or "") > 9:
        shown = repr(spec) if len(repr(spec)) <= 70 else repr(spec)[:66] + "...'"
        raise GhostwriteError(f"invalid model {shown}: use NAME or NAME@vN")
    version = m.group("version")
    # the name becomes a folder: one that is not a model name ('../..', 300 characters) never reaches the disk
    return check_name(m.group("name")), int(version) if version else None


def resolve(spec: str, version: int | None = None) -> tuple[str, int]:
    """`NAME` → its newest version; `NAME@vN` → that version. Unknown → GhostwriteError."""
    name, v = parse_spec(spec)
    v = version if version is not None else v
    have = versions(name)
    if not have:
        known = ", ".join(sorted(c["name"] for c in list_models())) or "none yet: run `ghostwrite train`"
        raise GhostwriteError(f"unknown model {name!r} (models: {known})")
    if v is None:
        return name, have[-1]
    if v not in have:
        raise GhostwriteError(f"model {name!r} has no version v{v} (versions: {', '.join(f'v{x}' for x in have)})")
    return name, v


def model_dir(name: str, version: int) -> Path:
    return models_dir() / name / f"v{version}"


def read_card(name: str, version: int) -> dict:
    path = model_dir(name, version) / "card.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GhostwriteError(f"unreadable model card {path}: {e}") from None


def update_card(name: str, version: int, changes: dict) -> dict:
    """Merge `changes` into a published version's card (written atomically); returns the new card."""
    card = {**read_card(name, version), **changes}
    atomic_write_text(model_dir(name, version) / "card.json", json.dumps(card, indent=2, ensure_ascii=False))
    return card


def list_models(all_versions: bool = False) -> list[dict]:
    root = models_dir()
    cards = []
    if not root.is_dir():
        return cards
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or not NAME_RE.match(folder.name):
            continue
        vs = versions(folder.name)
        for v in vs if all_versions else vs[-1:]:
            try:
                cards.append(read_card(folder.name, v))
            except GhostwriteError:
                continue
    return cards


def clean_stale(name: str) -> list[str]:
    """Remove what a publisher or a removal killed part-way left in `models/NAME/`: staging folders whose
    owner is gone (a publisher holds an flock on its staging folder while it works, and the kernel drops
    it when the process dies, however it dies) and half-deleted versions. Returns the names removed."""
    parent = models_dir() / name
    removed = []
    for p in sorted(parent.glob(".staging-*")) + sorted(parent.glob(".deleting-v*")):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its publisher is at work
            continue
        try:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        finally:
            os.close(fd)
    return removed


def _new_staging(parent: Path) -> tuple[Path, int]:
    """A fresh staging folder and the descriptor that holds its lock (see clean_stale)."""
    while True:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
        try:
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # a cleaner took it for stale in the instant before the lock
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits out a cleaner that got there first, then checks
        try:
            if os.path.samestat(os.stat(staging), os.fstat(fd)):
                return staging, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def register(name: str, files: dict[str, Path | bytes | str], card: dict) -> int:
    """Publish a new version of `name` from `files` (file name → source path or content). Returns N."""
    check_name(name)
    parent = models_dir() / name
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(name)
    staging, held = _new_staging(parent)
    try:
        for fname, src in files.items():
            dst = staging / fname
            if isinstance(src, Path):
                shutil.copyfile(src, dst)
            else:
                with open(dst, "wb") as f:
                    f.write(src if isinstance(src, bytes) else src.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())
        for _ in range(100):  # another process may publish at the same moment: take the next number
            version = (latest_version(name) or 0) + 1
            card = {**card, "name": name, "version": version}
            atomic_write_text(staging / "card.json", json.dumps(card, indent=2, ensure_ascii=False))
            try:
                os.rename(staging, model_dir(name, version))
            except OSError:
                if model_dir(name, version).exists():
                    continue
                raise
            fsync_dir(parent)
            return version
        raise GhostwriteError(f"could not register a new version of {name!r}")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        os.close(held)


def remove(name: str, version: int | None = None) -> list[int]:
    """Delete one version, or every version when `version` is None. Returns the versions removed."""
    name, _ = resolve(name) if version is None else (name, version)
    targets = versions(name) if version is None else [resolve(f"{name}@v{version}")[1]]
    for v in targets:
        # rename first so readers never see a half-deleted folder
        doomed = models_dir() / name / f".deleting-v{v}"
        os.rename(model_dir(name, v), doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    if not versions(name):
        shutil.rmtree(models_dir() / name, ignore_errors=True)
    return targets
