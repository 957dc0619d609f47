"""The writing page of `ghostwrite serve` in a real headless Chromium (Debian's, driven by Playwright):
it loads the models and the contract's settings, continues the story at the cursor while streaming,
shows token alternatives on hover, keeps the story across a reload, and undoes. A screenshot is saved in
the test's tmp folder (and in $GHOSTWRITE_TEST_ARTEFACTS when set). Skips where Chromium or Playwright
is absent (a fresh machine: `apt-get install chromium`, `pip install playwright`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
if CHROMIUM is None:
    pytest.skip("no chromium on this machine", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")
from apiserver import holding, running  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def base(tiny_model):
    from bot.service import ContinuationService

    with ContinuationService(workers=8) as svc, running(service=svc) as url:
        yield url, svc


def test_page_continues_at_the_cursor_with_alternatives(base, tmp_path):
    url, svc = base
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.goto(url + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            assert "tiny" in page.locator("#model option").all_inner_texts()
            # the settings panel comes from the contract: one field per setting
            from bot.service import SETTINGS

            names = page.eval_on_selector_all("#settings [data-name]", "els => els.map(e => e.dataset.name)")
            assert names == [s.name for s in SETTINGS]
            page.fill("#set-length", "60")
            page.fill("#set-seed", "4")
            page.dispatch_event("#set-seed", "change")
            page.fill("#story", "ROMEO:\n\nTHE END")
            page.evaluate("() => { const s = document.getElementById('story'); s.selectionStart = s.selectionEnd = 7; }")
            page.click("#continue")
            page.wait_for_function("document.getElementById('status').textContent.includes('chars in')", timeout=60_000)
            text = page.input_value("#story")
            assert text.startswith("ROMEO:\n") and text.endswith("\nTHE END")
            added = text[len("ROMEO:\n"):-len("\nTHE END")]
            assert len(added) == 60  # length 60 chars, inserted at the cursor
            row = svc.history(source="api", limit=1)[0]
            assert row.output == added and row.prompt == "ROMEO:\n" and row.params["seed"] == 4
            # alternatives on hover
            tokens = page.locator("#tokens .tok")
            assert tokens.count() == 60
            tokens.nth(3).hover()
            pop = page.locator("#alts")
            pop.wait_for(state="visible")
            assert "chosen" in pop.inner_text() and pop.inner_text().count("%") == 6  # chosen + 5 alternatives
            shot = tmp_path / "writing-page.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("GHOSTWRITE_TEST_ARTEFACTS"):
                folder = Path(os.environ["GHOSTWRITE_TEST_ARTEFACTS"])
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, folder / shot.name)
            assert shot.stat().st_size > 10_000
            # the story is kept in the browser across a reload; undo takes the continuation back
            page.reload()
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            assert page.input_value("#story") == text
            assert page.input_value("#set-seed") == "4"
            page.click("#undo")
            assert page.input_value("#story") == "ROMEO:\n\nTHE END"
            # retry takes the last continuation back and writes another in its place (a new seed)
            page.fill("#set-seed", "")
            page.click("#continue")
            page.wait_for_function("document.getElementById('status').textContent.includes('chars in')", timeout=60_000)
            first = page.input_value("#story")
            page.click("#retry")
            page.wait_for_function(f"document.getElementById('story').value !== {first!r} && "
                                   "document.getElementById('status').textContent.includes('chars in')", timeout=60_000)
            again = page.input_value("#story")
            assert again.endswith("\nTHE END") and len(again) == len(first) and again != first
            # export downloads the story as it is
            with page.expect_download() as download:
                page.click("#export")
            assert Path(download.value.path()).read_text(encoding="utf-8") == again
            # stop: the continuation so far stays, and the row is stored interrupted
            page.fill("#set-length", "20000")
            page.fill("#story", "ROMEO:")
            page.evaluate("() => { const s = document.getElementById('story'); s.selectionStart = s.selectionEnd = 6; }")
            with holding(svc):  # the generation holds after its first piece: still running when Stop comes
                page.click("#continue")
                page.wait_for_function("document.getElementById('story').value.length > 6")
                page.click("#stop")
                page.wait_for_function("document.getElementById('status').textContent.startsWith('stopped')")
            kept = page.input_value("#story")[len("ROMEO:"):]
            import time

            deadline = time.monotonic() + 30
            while not (rows := [g for g in svc.history(source="api", limit=3) if g.status == "interrupted"]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert rows[0].output.startswith(kept) and len(rows[0].output) < 20_000
            page.fill("#set-length", "60")
            # a bad setting is the contract's message, shown on the page
            page.fill("#set-temperature", "11")
            page.click("#continue")
            page.wait_for_function("document.getElementById('status').classList.contains('error')")
            assert "temperature must be between 0 and 10" in page.inner_text("#status")
        finally:
            browser.close()


def test_page_asks_for_the_api_key_when_the_server_needs_one(base):
    from bot.api import ApiConfig

    _, svc = base
    key = "p" * 24
    with running(ApiConfig(keys={"writer": key}), svc) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('status').classList.contains('error')")
            assert page.is_visible("#key") and "API key" in page.inner_text("#status")
            page.fill("#key", key)
            page.dispatch_event("#key", "change")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            page.fill("#story", "ROMEO:")
            page.click("#continue")
            page.wait_for_function("document.getElementById('status').textContent.includes('chars in')",
                                   timeout=60_000)
            assert svc.history(source="api", limit=1)[0].user_id == "writer"
        finally:
            browser.close()
