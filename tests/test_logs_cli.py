"""`ghostwrite logs` through typer's CliRunner on the sub-app, against a store in a temp data dir."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.logs import app, parse_since
from bot.store import Store
from generator.errors import GhostwriteError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path))
    monkeypatch.delenv("GHOSTWRITE_DATABASE_URL", raising=False)
    return tmp_path


@pytest.fixture
def rows(home):
    """Four continuations: a chain of two (repl, ann), an old discord one (bob), an austen one."""
    now = datetime.now(timezone.utc)
    with Store() as s:
        first = s.record_generation(model="poe", model_version=2, prompt="The [bold]raven[/bold] came",
                                    output=" tapping at my door", source="repl", user_id="ann",
                                    user_name="Ann", latency_ms=100, tokens_out=5,
                                    params={"temperature": 0.8}, created_at=now - timedelta(minutes=30))  # fmt: skip
        second = s.record_generation(model="poe", model_version=2, prompt="", output=" and it spoke",
                                     source="repl", user_id="ann", parent_id=first, latency_ms=300,
                                     created_at=now - timedelta(minutes=20))  # fmt: skip
        old = s.record_generation(model="poe", prompt="Deep into that darkness", output=" peering",
                                  source="discord", user_id="bob", guild_id=1, channel_id=2,
                                  latency_ms=200, status="interrupted", created_at=now - timedelta(days=3))  # fmt: skip
        austen = s.record_generation(model="austen", prompt="It is a truth", output=" universally",
                                     source="cli", user_id="cat", created_at=now - timedelta(minutes=5))  # fmt: skip
        s.add_feedback(second, "bob", 1, emoji="👍")
    return {"first": first, "second": second, "old": old, "austen": austen}


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def assert_one_line_error(result, *words: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_list_table_and_json(rows):
    result = invoke("list")
    assert result.exit_code == 0, result.stderr
    for key in rows:
        assert f" {rows[key]} " in result.stdout
    data = json.loads(invoke("list", "--json").stdout)
    assert [r["id"] for r in data] == [rows["austen"], rows["second"], rows["first"], rows["old"]]
    assert data[2]["params"] == {"temperature": 0.8} and data[2]["user_name"] == "Ann"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "poe"], ["second", "first", "old"]),
        (["--model", "poe@v2"], ["second", "first"]),
        (["--source", "discord"], ["old"]),
        (["--user", "ann"], ["second", "first"]),
        (["--since", "1h"], ["austen", "second", "first"]),
        (["--since", "25m"], ["austen", "second"]),
        (["--limit", "1"], ["austen"]),
        (["--model", "nobody"], []),
    ],
)
def test_list_filters(rows, args, expected):
    result = invoke("list", "--json", *args)
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in json.loads(result.stdout)] == [rows[k] for k in expected]


def test_list_since_an_iso_date(rows):
    day = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    ids = [r["id"] for r in json.loads(invoke("list", "--json", "--since", day).stdout)]
    assert rows["old"] not in ids and rows["austen"] in ids


def test_list_on_an_empty_store(home):
    result = invoke("list")
    assert result.exit_code == 0 and "no continuations" in result.stdout
    assert json.loads(invoke("list", "--json").stdout) == []


def test_search(rows):
    result = invoke("search", "darkness")
    assert result.exit_code == 0 and f" {rows['old']} " in result.stdout
    data = json.loads(invoke("search", "spoke", "--json").stdout)
    assert [r["id"] for r in data] == [rows["second"]]
    assert json.loads(invoke("search", "tapping door", "--json").stdout)[0]["id"] == rows["first"]
    nothing = invoke("search", "zeppelin")
    assert nothing.exit_code == 0 and "nothing found" in nothing.stdout
    assert_one_line_error(invoke("search", "?!"), "nothing to search")


def test_show_with_parent_chain(rows):
    result = invoke("show", str(rows["second"]))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"#{rows['first']}" in out and "tapping at my door" in out  # the parent, first
    assert out.index("tapping") < out.index("and it spoke")
    assert "poe@v2" in out and "+1 from 1 vote" in out and "300 ms" in out
    first = invoke("show", str(rows["first"]))
    assert "The [bold]raven[/bold] came" in first.stdout  # user text is text, never markup
    data = json.loads(invoke("show", str(rows["second"]), "--json").stdout)
    assert data["generation"]["id"] == rows["second"]
    assert [g["id"] for g in data["chain"]] == [rows["first"]]
    assert [(f["user_id"], f["value"], f["emoji"]) for f in data["feedback"]] == [("bob", 1, "👍")]


def test_show_bad_ids(rows):
    assert_one_line_error(invoke("show", "9999"), "no generation with id 9999")
    assert_one_line_error(invoke("show", "abc"), "not a generation id")
    assert_one_line_error(invoke("show", "0"), "not a generation id")


def test_export_jsonl_to_stdout(rows):
    result = invoke("export", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    data = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in data] == sorted(rows.values())  # oldest id first
    assert data[0]["prompt"] == "The [bold]raven[/bold] came" and data[0]["params"] == {"temperature": 0.8}
    only = [json.loads(x) for x in invoke("export", "--model", "austen").stdout.splitlines()]
    assert [r["id"] for r in only] == [rows["austen"]]


def test_export_csv_to_a_file(rows, tmp_path):
    target = tmp_path / "out" / "logs.csv"
    result = invoke("export", "--format", "csv", "--output", str(target), "--user", "ann")
    assert result.exit_code == 0, result.stderr
    assert "exported 2" in result.stderr
    parsed = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert [int(r["id"]) for r in parsed] == [rows["first"], rows["second"]]
    assert parsed[0]["output"] == " tapping at my door" and json.loads(parsed[0]["params"]) == {"temperature": 0.8}
    assert [p.name for p in target.parent.iterdir()] == ["logs.csv"]  # no temp file left behind


def test_export_bad_input(rows, tmp_path):
    assert_one_line_error(invoke("export", "--format", "xml"), "unknown export format", "jsonl or csv")
    assert_one_line_error(invoke("export", "--since", "last tuesday"), "--since")
    assert_one_line_error(invoke("export", "--source", "fax"), "--source")
    (tmp_path / "blocker").write_text("a file, not a folder")
    assert_one_line_error(invoke("export", "--output", str(tmp_path / "blocker" / "x.jsonl")), "cannot write")


def test_forget_asks_then_deletes(rows):
    refused = invoke("forget", "--user", "ann", input="n\n")
    assert refused.exit_code == 1 and "2 generations" in refused.stdout
    assert "nothing deleted" in refused.stderr
    assert len(json.loads(invoke("list", "--json", "--user", "ann").stdout)) == 2

    confirmed = invoke("forget", "--user", "ann", input="y\n")
    assert confirmed.exit_code == 0 and "deleted 2 continuation(s)" in confirmed.stdout
    assert json.loads(invoke("list", "--json", "--user", "ann").stdout) == []
    assert len(json.loads(invoke("list", "--json").stdout)) == 2  # the others stay

    quiet = invoke("forget", "--user", "bob", "--yes", "--json")
    assert json.loads(quiet.stdout) == {
        "user_id": "bob", "deleted": {"generations": 1, "feedback": 0, "stories": 0, "training_runs": 0}
    }  # fmt: skip
    assert invoke("search", "darkness", "--json").stdout.strip() == "[]"


def test_stats(rows):
    result = invoke("stats")
    assert result.exit_code == 0 and "poe" in result.stdout and "austen" in result.stdout
    data = json.loads(invoke("stats", "--json").stdout)
    assert data["total"] == 4
    poe = data["models"]["poe"]
    assert poe["count"] == 3 and poe["by_status"] == {"complete": 2, "interrupted": 1}
    assert poe["latency_ms"] == {"p50": 200.0, "p90": 280.0, "p99": 298.0}
    assert poe["feedback"] == 1 and poe["tokens_out"] == 5


def test_database_errors_are_one_line(home, monkeypatch):
    bad = home / "broken.db"
    bad.write_bytes(b"not sqlite at all " * 500)
    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{bad}")
    for args in (["list"], ["stats", "--json"], ["show", "1"], ["export"], ["forget", "--user", "x", "--yes"]):
        assert_one_line_error(invoke(*args), "corrupt", str(bad))
    monkeypatch.setenv("GHOSTWRITE_DATABASE_URL", f"sqlite:///{home}/missing/dir/x.db")
    assert_one_line_error(invoke("list"), "cannot open")


def test_parse_since():
    now = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("1w", now) == now - timedelta(weeks=1)
    assert parse_since(" 45m ", now) == now - timedelta(minutes=45)
    assert parse_since("2024-05-01T08:00:00+02:00") == datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)
    assert parse_since("2024-05-01T08:00:00Z") == datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)
    assert parse_since(None) is None
    with pytest.raises(GhostwriteError, match="--since"):
        parse_since("soon")


# ---- --output onto what is already there: only a regular file is replaced -----------------------------
def _jsonl_ids(text: str) -> list[int]:
    return [json.loads(line)["id"] for line in text.splitlines() if line.strip()]


def _scratch_null(tmp_path):
    """A character device that swallows what is written: a null device made in tmp_path (as root), or the
    real /dev/null for anyone else (who could not replace it if the export tried)."""
    import os
    import stat

    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(node, "wb") as f:
            f.write(b"probe")
        return node
    except OSError:
        if os.geteuid() == 0:
            pytest.skip("cannot make a device node here, and /dev/null must not be risked as root")
        return Path("/dev/null")


def test_export_to_a_device_writes_into_it_and_keeps_it(rows, tmp_path):
    import os
    import stat
    import threading
    import time
    import tty

    null = _scratch_null(tmp_path)
    result = invoke("export", "--output", str(null))
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode), "the device was replaced by a file"
    assert "exported 4" in result.stderr
    # a terminal is a device too: what it is sent arrives at the other end
    master, slave = os.openpty()
    tty.setraw(slave)
    got = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        path = os.ttyname(slave)
        result = invoke("export", "--output", path)
        assert result.exit_code == 0, result.stderr
        assert stat.S_ISCHR(os.stat(path).st_mode)
        deadline = time.monotonic() + 10
        while got.count(b"\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.close(slave)
        os.close(master)
    assert _jsonl_ids(got.decode("utf-8")) == sorted(rows.values())


def test_export_to_a_symlink_writes_its_target(rows, tmp_path):
    target = tmp_path / "real" / "logs.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(Path("real") / "logs.jsonl")  # relative, as people make them
    result = invoke("export", "--output", str(link))
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert _jsonl_ids(target.read_text(encoding="utf-8")) == sorted(rows.values())
    assert sorted(p.name for p in target.parent.iterdir()) == ["logs.jsonl"]  # no temp file left
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "new.jsonl")
    assert invoke("export", "--output", str(dangling)).exit_code == 0
    assert dangling.is_symlink() and _jsonl_ids((tmp_path / "new.jsonl").read_text()) == sorted(rows.values())


def test_export_to_a_fifo_streams_into_it(rows, tmp_path):
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()), daemon=True)
    reader.start()
    result = invoke("export", "--output", str(fifo))
    assert result.exit_code == 0, result.stderr
    reader.join(10)
    assert not reader.is_alive(), "nothing was written into the FIFO"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert _jsonl_ids(got[0].decode("utf-8")) == sorted(rows.values())


def test_export_to_dash_is_stdout(rows, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--output", "-")
    assert result.exit_code == 0, result.stderr
    assert _jsonl_ids(result.stdout) == sorted(rows.values())
    assert not (tmp_path / "-").exists()


def test_export_keeps_a_replaced_files_mode_and_a_new_one_follows_the_umask(rows, tmp_path):
    import os
    import stat

    kept = tmp_path / "private.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    assert invoke("export", "--output", str(kept)).exit_code == 0
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and _jsonl_ids(kept.read_text()) == sorted(rows.values())
    old = os.umask(0o022)
    try:
        assert invoke("export", "--output", str(tmp_path / "new.jsonl")).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o644  # mkstemp's would be 0600
