"""Where ghostwrite keeps its data: models, corpora and (for bot/) the database.

Everything lives under one data directory, `GHOSTWRITE_HOME`, by default the platform's user data
directory (e.g. ~/.local/share/ghostwrite). Nothing is ever written into the checkout.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from platformdirs import user_data_dir

from .errors import GhostwriteError


def home() -> Path:
    """The data directory, created if missing. One that cannot be a folder (a file, a path through a
    file, a folder that cannot be created) is one line of error naming GHOSTWRITE_HOME."""
    given = os.environ.get("GHOSTWRITE_HOME", "").strip()
    path = Path(os.path.expanduser(given or user_data_dir("ghostwrite", appauthor=False)))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:  # FileExistsError when it is a file; ValueError: a NUL in it
        try:
            why = "it is a file" if path.is_file() else getattr(e, "strerror", None) or str(e)
        except (OSError, ValueError):  # a name too long even to look at
            why = getattr(e, "strerror", None) or str(e)
        raise GhostwriteError(f"the data directory {path} ({'GHOSTWRITE_HOME' if given else 'default'}) "
                              f"cannot be used: {why}") from None
    return path


def checked(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path, once the system has said it can look it up (missing is fine): a name too long,
    a NUL or a folder it may not enter is one line of error, not the OSError `Path.exists()` raises."""
    p = Path(path)
    try:
        os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, ValueError) as e:
        shown = str(p) if len(str(p)) <= 80 else str(p)[:77] + "..."
        raise GhostwriteError(f"cannot use the path {shown}: {getattr(e, 'strerror', None) or e}") from None
    return p


def models_dir() -> Path:
    return home() / "models"


def corpora_dir() -> Path:
    return home() / "corpora"


def runs_dir() -> Path:
    return home() / "runs"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the whole new one:
    a temporary file in the same folder, fsync, rename, then fsync of the folder.

    Only a regular file (or a path where nothing is yet) is replaced that way. A symlink is followed:
    its target is what gets replaced, and the link stays. A device, a FIFO or any other special file is
    written to as a stream (renaming over /dev/null would replace the device with a plain file)."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows links, /proc's magic ones (/dev/stdout) included
    except FileNotFoundError:
        st = None  # nothing there, or a dangling link: its target is created
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
        return
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))  # a replaced file keeps its permissions
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temporary file next to `path`, created like any new file (the umask decides its mode;
    mkstemp's would be 0600 whatever the umask)."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: Path) -> None:
    try:
        dfd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
