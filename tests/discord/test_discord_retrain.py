"""/retrain through the real command tree with a scripted job runner (the real one runs in the e2e test)."""

import asyncio

import discord
import pytest
from interactions import ADMIN_PERMISSIONS, MEMBER_PERMISSIONS, attachment_payload

MANAGE_GUILD_ONLY = str(discord.Permissions(manage_guild=True, send_messages=True).value)


class ScriptedRunner:
    def __init__(self, states):
        self.states = list(states)
        self.submitted = []
        self.cancelled = []
        self.running = None

    def submit(self, model, corpus, base=None, max_time=None, requested_by=None):
        self.submitted.append(dict(model=model, corpus=corpus, base=base, max_time=max_time,
                                   requested_by=requested_by))
        self.running = 9
        return 9

    def status(self, run_id=None):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state["status"] in ("complete", "failed", "cancelled"):
            self.running = None
        return dict(state, id=9, model="bard")

    def current(self):
        return self.running

    def cancel(self, run_id=None):
        self.cancelled.append(run_id)
        self.running = None
        return True

    def shutdown(self):
        if self.running is not None:
            self.cancel(self.running)


@pytest.fixture
def uploads(monkeypatch):
    """Attachment bodies by URL (the harness has no CDN; the e2e test downloads for real)."""
    files = {}

    async def read(self, *, use_cached=False):
        return files[self.url]

    monkeypatch.setattr(discord.Attachment, "read", read)
    return files


def corpus_option(uploads, name="corpus.txt", data=b"To be or not to be.\n" * 50):
    att = attachment_payload(name, len(data), url=f"http://cdn.invalid/{name}")
    uploads[att["url"]] = data
    return [{"name": "corpus", "type": 11, "value": att["id"]}], {"attachments": {att["id"]: att}}


async def wait_for(pred, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_retrain_trains_and_edits_one_progress_message(harness, slash_bot, uploads, tmp_path):
    runner = ScriptedRunner([{"status": "running", "progress": {"step": 3, "loss": 2.5, "elapsed": 4}},
                             {"status": "running", "progress": {"step": 9, "loss": 1.9, "elapsed": 9}},
                             {"status": "complete", "new_version": 2, "progress": {"step": 12, "val_bpc": 1.7}}])
    slash_bot.get_cog("Ghostwrite").svc.job_runner = runner
    options, resolved = corpus_option(uploads)
    await harness.slash("retrain", subcommand="start", raw_options=options, resolved=resolved,
                        permissions=ADMIN_PERMISSIONS, name="bard")
    await wait_for(lambda: any("now serving v2" in (c.text or "") for c in harness.calls))
    (job,) = runner.submitted
    assert job["model"] == "bard" and job["base"] is None and job["requested_by"] == "900000000000000300"
    saved = open(job["corpus"], encoding="utf-8").read()
    assert saved == "To be or not to be.\n" * 50 and str(tmp_path) in job["corpus"]
    kinds = harness.adapter.kinds()
    assert kinds[0] == "defer" and set(kinds[1:]) == {"edit"}  # one message, edited as the job goes
    texts = [c.text for c in harness.calls[1:]]
    assert texts[0] == "Training **bard** (run #9) is queued."
    assert any("step 9" in t and "loss 1.900" in t for t in texts)
    assert texts[-1].endswith("now serving v2")


async def test_retrain_refuses_members_and_manage_server(harness, slash_bot, uploads):
    slash_bot.get_cog("Ghostwrite").svc.job_runner = runner = ScriptedRunner([{"status": "running"}])
    options, resolved = corpus_option(uploads)
    for perms in (MEMBER_PERMISSIONS, MANAGE_GUILD_ONLY):
        await harness.slash("retrain", subcommand="start", raw_options=options, resolved=resolved,
                            permissions=perms)
        refusal = harness.replies()[-1]
        assert refusal.ephemeral and "Only administrators or the bot owner" in refusal.text
    assert runner.submitted == []


async def test_retrain_rejects_big_and_non_utf8_files(harness, slash_bot, uploads):
    cog = slash_bot.get_cog("Ghostwrite")
    cog.svc.job_runner = runner = ScriptedRunner([{"status": "running"}])
    cog.config.corpus_max_bytes = 100
    options, resolved = corpus_option(uploads, data=b"x" * 101)
    await harness.slash("retrain", subcommand="start", raw_options=options, resolved=resolved,
                        permissions=ADMIN_PERMISSIONS)
    (refusal,) = harness.replies()
    assert refusal.kind() == "respond" and refusal.ephemeral and "limit is 100 bytes" in refusal.text
    options, resolved = corpus_option(uploads, name="latin1.txt", data="café".encode("latin-1"))
    harness.adapter.reset()
    await harness.slash("retrain", subcommand="start", raw_options=options, resolved=resolved,
                        permissions=ADMIN_PERMISSIONS)
    assert harness.adapter.kinds() == ["defer", "delete", "followup"]
    assert "not UTF-8 text (bad byte at offset 3)" in harness.calls[-1].text and harness.calls[-1].ephemeral
    assert runner.submitted == []


async def test_retrain_failure_says_the_old_version_keeps_serving(harness, slash_bot, uploads):
    slash_bot.get_cog("Ghostwrite").svc.job_runner = ScriptedRunner(
        [{"status": "failed", "error": "loss went to NaN"}])
    options, resolved = corpus_option(uploads)
    await harness.slash("retrain", subcommand="start", raw_options=options, resolved=resolved,
                        permissions=ADMIN_PERMISSIONS)
    await wait_for(lambda: "keeps serving" in (harness.calls[-1].text or ""))
    assert "failed · loss went to NaN; the previous version keeps serving" in harness.calls[-1].text


async def test_retrain_status_and_cancel(harness, slash_bot):
    runner = ScriptedRunner([{"status": "running", "progress": {"step": 1}}])
    runner.running = 9
    slash_bot.get_cog("Ghostwrite").svc.job_runner = runner
    await harness.slash("retrain", subcommand="status")
    assert "Only administrators" in harness.replies()[-1].text
    await harness.slash("retrain", subcommand="status", permissions=ADMIN_PERMISSIONS)
    assert harness.replies()[-1].ephemeral and "(run #9): running · step 1" in harness.replies()[-1].text
    await harness.slash("retrain", subcommand="cancel", permissions=MEMBER_PERMISSIONS)
    assert runner.cancelled == [] and "Only administrators" in harness.replies()[-1].text
    await harness.slash("retrain", subcommand="cancel", permissions=ADMIN_PERMISSIONS)
    assert runner.cancelled == [9] and "Cancelled run #9" in harness.replies()[-1].text


async def test_unload_cancels_a_running_job(slash_bot):
    runner = ScriptedRunner([{"status": "running"}])
    runner.running = 9
    slash_bot.get_cog("Ghostwrite").svc.job_runner = runner
    await slash_bot.unload_extension("bot.discord")
    assert runner.cancelled == [9]
