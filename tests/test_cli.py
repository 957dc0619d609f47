"""The `ghostwrite` command end to end, and its bad-input contract: one line, exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

GW = [sys.executable, "-m", "bot.cli"]


def run(args, home, input=None, check_ok=True):
    env = {**os.environ, "GHOSTWRITE_HOME": str(home), "GHOSTWRITE_THREADS": "1"}
    env.pop("GHOSTWRITE_DATABASE_URL", None)
    p = subprocess.run(GW + args, env=env, capture_output=True, text=True, input=input, timeout=300)
    if check_ok:
        assert p.returncode == 0, p.stderr
    return p


def test_end_to_end_corpus_train_eval_generate(tiny_corpus, tmp_path):
    home = tmp_path / "home"
    run(["corpus", "add", "mini", str(tiny_corpus), "--author", "Test", "--lang", "en"], home)
    out = run(["train", "mini", "--preset", "tiny", "--max-time", "5", "--json"], home)
    card = json.loads(out.stdout.strip().splitlines()[-1])
    assert card["name"] == "mini" and card["version"] == 1
    ev = json.loads(run(["eval", "mini", "--json"], home).stdout)
    for key in ("nats_per_char", "bits_per_char", "chars", "tokens"):
        assert key in ev
    assert abs(ev["bits_per_char"] - card["val_bpc"]) < 0.05  # the same split, scored as one stream
    g1 = run(["generate", "mini", "KING:", "--length", "40", "--seed", "7", "--json"], home).stdout
    g2 = run(["generate", "mini", "KING:", "--length", "40", "--seed", "7", "--json"], home).stdout
    assert json.loads(g1)["text"] == json.loads(g2)["text"] and len(json.loads(g1)["text"]) == 40
    assert json.loads(g1)["finish_reason"] == "length"
    streamed = run(["generate", "mini", "KING:", "--length", "40", "--seed", "7", "--stream"], home).stdout
    assert streamed.rstrip("\n") == json.loads(g1)["text"].rstrip("\n")
    listed = json.loads(run(["models", "list", "--json"], home).stdout)
    assert [c["name"] for c in listed] == ["mini"]
    logs = json.loads(run(["logs", "list", "--json"], home).stdout)
    assert len(logs) == 3 and all(r["source"] == "cli" for r in logs)


@pytest.mark.parametrize("args,needle", [
    (["train", "no-such-corpus"], "unknown corpus"),
    (["train", "{empty}"], "empty"),
    (["train", "{binary}"], "byte"),
    (["train", "{small}"], "small"),
    (["generate", "ghost", "hi"], "unknown model"),
    (["generate", "{model}", "hi", "--temperature", "-1"], "temperature"),
    (["generate", "{model}", "hi", "--temperature", "nan"], "temperature"),
    (["generate", "{model}", "hi", "--top-p", "0"], "top_p"),
    (["generate", "{model}", "hi", "--top-p", "1.5"], "top_p"),
    (["generate", "{model}", "hi", "--top-k", "-2"], "top_k"),
    (["generate", "{model}", "hi", "--length", "0"], "length"),
    (["generate", "{model}", "hi", "--length", "999999999"], "length"),
    (["generate", "{model}", "{long}"], "prompt too long"),
    (["eval", "{model}", "--text", "{binary}"], "byte"),
    (["models", "show", "nope"], "unknown model"),
])
def test_bad_input_is_one_line_exit_2(args, needle, tiny_model, tmp_path, session_home):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"hello\x00\xff\xfe world")
    small = tmp_path / "small.txt"
    small.write_text("tiny")
    subs = {"{empty}": str(empty), "{binary}": str(binary), "{small}": str(small), "{model}": "tiny",
            "{long}": "x" * 25_000}
    args = [subs.get(a, a) for a in args]
    p = run(args, session_home, check_ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert needle.lower() in lines[0].lower()
    assert "Traceback" not in p.stderr


def test_checksum_mismatch_and_corrupt_checkpoint_exit_2(tiny_model, session_home, tmp_path):
    import shutil

    home = tmp_path / "h"
    shutil.copytree(session_home / "models", home / "models")
    mp = home / "models" / "tiny" / f"v{tiny_model['version']}" / "model.pt"
    mp.write_bytes(mp.read_bytes()[:1000])
    p = run(["generate", "tiny", "hi"], home, check_ok=False)
    assert p.returncode == 2 and "corrupt" in p.stderr and "Traceback" not in p.stderr
