"""Corpora: reading files (encodings, errors), Gutenberg stripping, the registry, the split, and the
`corpus` sub-commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from shared_corpora import shared_corpus
from typer.testing import CliRunner

from bot.cli.corpus import app
from generator.corpora import corpus as C
from generator.errors import GhostwriteError


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "gwhome"
    monkeypatch.setenv("GHOSTWRITE_HOME", str(h))
    monkeypatch.setenv("GHOSTWRITE_RECIPES", str(tmp_path / "no-recipes"))
    return h


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# --- reading -------------------------------------------------------------------------------------------
def test_read_utf8_bom_crlf(tmp_path):
    p = write(tmp_path / "a.txt", b"\xef\xbb\xbfline one\r\nline two\r\nold mac\rend")
    assert C.read_text_file(p) == "line one\nline two\nold mac\nend"


def test_read_binary_names_file_and_offset(tmp_path):
    p = write(tmp_path / "img.txt", b"GIF89a\x01\x00\x00\x00")
    with pytest.raises(GhostwriteError) as e:
        C.read_text_file(p)
    msg = str(e.value)
    assert "img.txt" in msg and "binary" in msg and "offset 7" in msg
    assert "\n" not in msg


def test_read_bad_utf8_names_offset(tmp_path):
    data = "天地".encode("gb18030")
    p = write(tmp_path / "gb.txt", b"hello " + data)
    with pytest.raises(GhostwriteError, match=r"gb\.txt: not valid UTF-8 at byte offset 6") as e:
        C.read_text_file(p)
    assert "--encoding" in str(e.value)


def test_read_gb18030_with_encoding(tmp_path):
    text = "第一回　灵根育孕源流出\r\n诗曰：混沌未分天地乱，茫茫渺渺无人见。\r\n"
    p = write(tmp_path / "xyj.txt", text.encode("gb18030"))
    assert C.read_text_file(p, encoding="gb18030") == text.replace("\r\n", "\n")
    assert C.read_text_file(p, encoding="GB18030") == text.replace("\r\n", "\n")


def test_read_utf16_hint(tmp_path):
    p = write(tmp_path / "u16.txt", "hello".encode("utf-16"))
    with pytest.raises(GhostwriteError, match="utf-16"):
        C.read_text_file(p)
    assert C.read_text_file(p, encoding="utf-16") == "hello"


def test_read_empty_missing_folder_unknown_encoding(tmp_path):
    with pytest.raises(GhostwriteError, match="empty"):
        C.read_text_file(write(tmp_path / "e.txt", b""))
    with pytest.raises(GhostwriteError, match="empty"):
        C.read_text_file(write(tmp_path / "ws.txt", b"\xef\xbb\xbf \n\n"))
    with pytest.raises(GhostwriteError, match="not found"):
        C.read_text_file(tmp_path / "missing.txt")
    with pytest.raises(GhostwriteError, match="folder"):
        C.read_text_file(tmp_path)
    with pytest.raises(GhostwriteError, match="unknown encoding"):
        C.read_text_file(write(tmp_path / "ok.txt", "x"), encoding="klingon-8")


def test_strip_gutenberg():
    text = (
        "The Project Gutenberg EBook of Pride and Prejudice, by Jane Austen\n\nLicence blah\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***\n\n\n\n"
        "Produced by Anonymous Volunteers\n\n\n\n\nPRIDE AND PREJUDICE\n\nIt is a truth.\n\n\n\n"
        "End of the Project Gutenberg EBook of Pride and Prejudice, by Jane Austen\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK PRIDE AND PREJUDICE ***\n\nMore licence.\n"
    )
    assert C.strip_gutenberg_text(text) == "PRIDE AND PREJUDICE\n\nIt is a truth.\n"
    newer = "header\n*** START OF THE PROJECT GUTENBERG EBOOK 1342 ***\nBody.\n*** END OF THE PROJECT GUTENBERG EBOOK 1342 ***\n"
    assert C.strip_gutenberg_text(newer) == "Body.\n"
    assert C.strip_gutenberg_text("No markers here.\n") == "No markers here.\n"


# --- split ---------------------------------------------------------------------------------------------
def test_split_last_fraction():
    text = "".join(chr(65 + i % 26) for i in range(1000))
    train, val = C.split_text(text)
    assert train + val == text
    assert len(train) == 900 and len(val) == 100
    train, val = C.split_text(text, val_fraction=0.25)
    assert len(val) == 250


def test_split_matches_nanogpt():
    text = shared_corpus("tinyshakespeare.txt").read_text(encoding="utf-8")
    train, val = C.split_text(text)
    n = len(text)
    assert train == text[: int(n * 0.9)] and val == text[int(n * 0.9) :]
    assert len(val) == 111540


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, float("nan"), "x"])
def test_split_bad_fraction(frac):
    with pytest.raises(GhostwriteError):
        C.split_text("a" * 1000, val_fraction=frac)


def test_split_too_small():
    with pytest.raises(GhostwriteError, match="too small to split"):
        C.split_text("To be, or not to be.")


# --- registry ------------------------------------------------------------------------------------------
def test_add_load_list(home, tmp_path):
    p = write(tmp_path / "src" / "play.txt", "\ufeffTo be, or not to be:\r\nthat is the question.\r\n")
    info = C.add_corpus("hamlet", [p], author="Shakespeare", lang="en")
    assert info.characters == len("To be, or not to be:\nthat is the question.\n")
    folder = home / "corpora" / "hamlet"
    assert (folder / "text.txt").read_bytes() == b"To be, or not to be:\nthat is the question.\n"
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("name", "author", "lang", "source", "sha256", "files", "size_bytes", "characters", "distinct_characters", "created"):
        assert key in meta
    assert meta["distinct_characters"] == len(set("To be, or not to be:\nthat is the question.\n"))
    c = C.load_corpus("hamlet")
    assert c.name == "hamlet" and c.text.startswith("To be") and c.info["sha256"] == info.sha256
    assert [i.name for i in C.list_corpora()] == ["hamlet"]
    assert not [f for f in (home / "corpora").iterdir() if f.name.startswith(".")]  # no temp folders left


def test_add_folder_and_glob(home, tmp_path):
    src = tmp_path / "books"
    write(src / "b.txt", "second")
    write(src / "a.md", "first\n")
    write(src / "sub" / "c.txt", "third\n")
    write(src / "skip.bin", b"\x00\x01")
    write(src / ".hidden.txt", "hidden")
    info = C.add_corpus("books", [src])
    assert C.load_corpus("books").text == "first\n\nsecond\n\nthird\n"
    assert [Path(f).name for f in info.files] == ["a.md", "b.txt", "c.txt"]
    info = C.add_corpus("globbed", [str(src / "*.txt")])
    assert C.load_corpus("globbed").text == "second"


def test_add_same_text_is_a_no_op_different_needs_force(home, tmp_path):
    a = write(tmp_path / "a.txt", "one text\n")
    b = write(tmp_path / "b.txt", "another text\n")
    first = C.add_corpus("x", [a])
    again = C.add_corpus("x", [a])
    assert again.sha256 == first.sha256 and again.created == first.created
    with pytest.raises(GhostwriteError, match="already exists"):
        C.add_corpus("x", [b])
    assert C.load_corpus("x").text == "one text\n"
    C.add_corpus("x", [b], replace=True)
    assert C.load_corpus("x").text == "another text\n"


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "x" * 65, "con", "sp ace"])
def test_bad_names(home, tmp_path, name):
    p = write(tmp_path / "a.txt", "text")
    with pytest.raises(GhostwriteError, match="invalid corpus name"):
        C.add_corpus(name, [p])


def test_add_errors_leave_nothing(home, tmp_path):
    with pytest.raises(GhostwriteError, match="not found"):
        C.add_corpus("x", [tmp_path / "nope.txt"])
    with pytest.raises(GhostwriteError, match="no .txt or .md files"):
        C.add_corpus("x", [str(tmp_path / "*.txt")])
    bad = write(tmp_path / "bad.txt", b"ok\xff")
    good = write(tmp_path / "good.txt", "fine")
    with pytest.raises(GhostwriteError, match="bad.txt"):
        C.add_corpus("x", [good, bad])
    assert C.list_corpora() == []


def test_load_by_path(home, tmp_path):
    p = write(tmp_path / "poem.txt", "Shall I compare thee\r\n")
    c = C.load_corpus(str(p))
    assert c.name == "poem" and c.text == "Shall I compare thee\n"
    assert c.info["sha256"] and c.info["characters"] == 21
    c2 = C.load_corpus(p)
    assert c2.text == c.text


def test_load_unknown_and_damaged(home, tmp_path):
    with pytest.raises(GhostwriteError, match="unknown corpus 'nothing'"):
        C.load_corpus("nothing")
    with pytest.raises(GhostwriteError, match="not found"):
        C.load_corpus(str(tmp_path / "nothing.txt"))
    C.add_corpus("d", [write(tmp_path / "d.txt", "some text\n")])
    (home / "corpora" / "d" / "text.txt").write_text("tampered\n")
    with pytest.raises(GhostwriteError, match="damaged"):
        C.load_corpus("d")


def test_load_shared_file_by_path(home):
    c = C.load_corpus(str(shared_corpus("tinyshakespeare.txt")))
    assert c.name == "tinyshakespeare" and len(c.text) == 1115394
    assert c.info["lang"] == "en"


def test_detect_lang():
    assert C.detect_lang("孙悟空" * 100) == "zh"
    assert C.detect_lang("To be or not to be") == "en"
    assert C.detect_lang("Ελληνικά κείμενα") is None


# --- CLI ---------------------------------------------------------------------------------------------------
runner = CliRunner()


def one_line_error(result) -> str:
    err = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    return err


def test_cli_add_list_show(home, tmp_path):
    p = write(tmp_path / "sonnet.txt", "Shall I compare thee to a summer's day?\nThou art more lovely.\n")
    r = runner.invoke(app, ["add", "sonnets", str(p), "--author", "Shakespeare", "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "sonnets" in r.stdout
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "sonnets" in r.stdout
    r = runner.invoke(app, ["show", "sonnets"])
    assert r.exit_code == 0
    for word in ("size", "characters", "distinct characters", "language", "en", "source", "Shakespeare"):
        assert word in r.stdout
    r = runner.invoke(app, ["show", "sonnets", "--json"])
    d = json.loads(r.stdout)
    assert d["characters"] == 62 and d["lang"] == "en" and d["author"] == "Shakespeare"
    r = runner.invoke(app, ["list", "--json"])
    assert [c["name"] for c in json.loads(r.stdout)["corpora"]] == ["sonnets"]
    r = runner.invoke(app, ["rm", "sonnets"])
    assert r.exit_code == 0 and C.list_corpora() == []


def test_cli_add_encoding(home, tmp_path):
    p = write(tmp_path / "gb.txt", "诗曰：混沌未分天地乱\n".encode("gb18030"))
    r = runner.invoke(app, ["add", "gb", str(p)])
    err = one_line_error(r)
    assert "gb.txt" in err and "byte offset 4" in err  # 诗曰 happen to be valid UTF-8 bytes
    r = runner.invoke(app, ["add", "gb", str(p), "--encoding", "gb18030"])
    assert r.exit_code == 0, r.output
    assert C.load_corpus("gb").text == "诗曰：混沌未分天地乱\n"
    assert C.corpus_info("gb").lang == "zh"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["show", "nope"], "unknown corpus"),
        (["add", "x", "/definitely/not/here.txt"], "not found"),
        (["add", "../bad", "/etc/hostname"], "invalid corpus name"),
        (["get", "nope"], "no recipe"),
        (["rm", "nope"], "unknown corpus"),
    ],
)
def test_cli_bad_input_exit_2(home, args, needle):
    err = one_line_error(runner.invoke(app, args))
    assert needle in err


def test_cli_binary_and_empty(home, tmp_path):
    err = one_line_error(runner.invoke(app, ["add", "b", str(write(tmp_path / "b.txt", b"ab\x00cd"))]))
    assert "binary" in err and "offset 2" in err
    err = one_line_error(runner.invoke(app, ["add", "e", str(write(tmp_path / "e.txt", b""))]))
    assert "empty" in err
    assert not (home / "corpora" / "b").exists() and not (home / "corpora" / "e").exists()


def test_environment_home_is_used(home):
    assert C.corpora_dir() == home / "corpora"
    assert os.environ["GHOSTWRITE_HOME"] == str(home)
