"""The REPL through a real pseudo-terminal (pexpect): type a prompt and see it stream in colour, Alt+Enter,
a \"\"\" block, /set with a bad value, Ctrl+C during a long generation (stored as interrupted with the
partial text), Ctrl+C at the prompt, /save, /quit — and the rows checked in the store."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

REPO = Path(__file__).resolve().parents[1]
GHOSTWRITE = REPO / ".venv" / "bin" / "ghostwrite"
PROMPT = "tiny>"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def plain(text: str) -> str:
    return ANSI.sub("", text)


@pytest.fixture
def repl(tiny_model, session_home):
    env = dict(os.environ, GHOSTWRITE_HOME=str(session_home), GHOSTWRITE_THREADS="1", TERM="xterm-256color",
               PROMPT_TOOLKIT_NO_CPR="1", COLUMNS="100", LINES="30")
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(str(GHOSTWRITE), ["repl", "tiny"], env=env, cwd=str(REPO), encoding="utf-8",
                          dimensions=(30, 100), timeout=30)
    yield child
    if child.isalive():
        child.terminate(force=True)


def prompt(child) -> str:
    """Wait for the next prompt (prompt_toolkit draws `tiny>` and moves the cursor for the space);
    returns what came before it. Call it only after waiting for the answer to the last input, since
    prompt_toolkit redraws the line being typed."""
    child.expect_exact(PROMPT)
    return child.before


def enter(child, text: str, answer: str) -> str:
    """Type a line, wait for `answer` (a regex) and then the next prompt; returns what came between."""
    child.send(text + "\r")
    child.expect(answer)
    return prompt(child)


def test_repl_in_a_terminal(repl, tmp_path):
    from bot.store import Store

    child = repl
    banner = prompt(child)
    assert "tiny@v1" in banner and "/help" in banner

    enter(child, "/set length 40", "length 40 chars")

    # A prompt streams the model's text in colour (green), then a footer with the stored id.
    child.send("The king spoke\r")
    child.expect(r"#(\d+) · tiny@v1 · 40 chars")
    first_id = int(child.match.group(1))
    assert "\x1b[32m" in child.before  # the model's words are green; the writer's are not
    prompt(child)

    # A bad value: one line, and the REPL goes on.
    after = enter(child, "/set temperature -1", r"temperature must be between 0 and 10 \(0 = greedy\), got -1\b")
    assert not plain(after).strip(), after

    # Alt+Enter makes a new line; a """ block spans lines.
    child.send("ROMEO:\x1b\rMy lady\r")
    child.expect(r"#(\d+) · tiny@v1")
    romeo_id = int(child.match.group(1))
    prompt(child)
    child.send('"""\r')
    child.expect_exact("...")
    child.send("JULIET:\r")
    child.expect_exact("...")
    child.send('Good night"""\r')
    child.expect(r"#(\d+) · tiny@v1")
    juliet_id = int(child.match.group(1))
    prompt(child)

    # Ctrl+C during a long generation stops it; the partial text stays and is stored as interrupted.
    enter(child, "/set length 20000", "length 20,000 chars")  # the most allowed: ~1 s of the tiny model
    child.send("Night fell\r")
    child.expect_exact("\x1b[32m")  # the first of the model's words
    time.sleep(0.05)
    child.sendintr()
    child.expect(r"stopped · #(\d+) · tiny@v1 · ([\d,]+) chars")
    stopped_id, shown_chars = int(child.match.group(1)), int(child.match.group(2).replace(",", ""))
    prompt(child)

    # Ctrl+C at the prompt clears the line; it is not sent.
    child.send("half typed")
    child.expect_exact("typed")
    child.sendintr()
    path = tmp_path / "story.txt"
    enter(child, f"/save {path}", "saved [\\d,]+ chars to")
    child.send("/quit\r")
    child.expect(pexpect.EOF, timeout=15)
    child.close()
    assert child.exitstatus == 0

    store = Store()
    first, romeo, juliet, stopped = (store.get(i) for i in (first_id, romeo_id, juliet_id, stopped_id))
    assert first.source == "repl" and first.status == "complete" and first.prompt == "The king spoke"
    # the writer's words join the story with a space unless the model's text already ended in whitespace
    # (or nothing at all: what the tiny model wrote decides which)
    so_far = first.prompt + first.output
    sep = "" if so_far[-1:].isspace() else " "
    assert romeo.prompt.endswith(so_far + sep + "ROMEO:\nMy lady") and romeo.parent_id == first.id
    assert juliet.prompt.endswith("JULIET:\nGood night") and juliet.parent_id == romeo.id
    assert stopped.status == "interrupted" and stopped.parent_id == juliet.id
    assert 0 < len(stopped.output) < 20000 and len(stopped.output) == shown_chars
    story = path.read_text(encoding="utf-8")
    assert story.startswith("The king spoke" + first.output)
    assert story.rstrip("\n").endswith(stopped.output.rstrip("\n")) and "half typed" not in story
    assert not [g for g in store.list_generations(source="repl", limit=20) if "half typed" in g.prompt]
