"""Fixtures for the Discord tests.

`svc` is the real `bot.service.ContinuationService` over a real `bot.store.Store` (SQLite in a temp dir); only
the model is replaced (`ScriptedModel`: deterministic words at a chosen pace, no torch), so the service's own
threads, streaming and store writes are exercised. The end-to-end tests use a real trained model instead.
"""

from __future__ import annotations

import threading
import time

import discord
import pytest
import pytest_asyncio
from discord.ext import commands

from bot.discord.config import DiscordConfig
from bot.service import ContinuationService
from bot.store import Store
from generator.errors import GhostwriteError

import dpytest_shim
from interactions import Harness

WORDS = ("the quick brown fox jumps over a lazy dog and then. it sleeps! does it dream? "
         "yes, of <@123> and @everyone and *stars*\n").split(" ")


class ScriptedGeneration:
    def __init__(self, lm: "ScriptedModel", prompt: str, settings):
        self.lm, self.prompt, self.settings = lm, prompt, settings
        self.seed = settings.seed if settings.seed is not None else 7
        self.tokens_in = len(prompt)
        self.tokens_out = 0
        self._closed = False
        self._it = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._it)

    def close(self) -> None:
        self._closed = True
        self._it.close()

    def _run(self):
        lm = self.lm
        lm.started.set()
        if "FAIL-NOW" in self.prompt:
            raise GhostwriteError("the model broke")
        target = self.settings.length if self.settings.unit == "chars" else self.settings.length * 6
        produced = 0
        i = 0
        while produced < target:
            if lm.gate is not None:
                lm.gate.wait(10)
            if lm.delay:
                time.sleep(lm.delay)
            if "FAIL-LATER" in self.prompt and produced > 20:
                raise GhostwriteError("the model broke later")
            piece = " " + WORDS[i % len(WORDS)]
            piece = piece[: target - produced] if self.settings.unit == "chars" else piece
            i += 1
            produced += len(piece)
            self.tokens_out += 1
            yield piece


class ScriptedModel:
    """Stands in for generator.LoadedModel: `generate()` yields words, `delay` seconds apart."""

    def __init__(self, name: str, version: int):
        self.name, self.version = name, version
        self.card = {"name": name, "version": version, "tokenizer": {"kind": "char"}, "params": 1_234_567,
                     "val_bpc": 1.5, "corpus": "tiny"}
        self.delay = 0.0
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def generate(self, prompt, settings):
        return ScriptedGeneration(self, prompt, settings)


class ScriptedService(ContinuationService):
    """The real service with scripted models `bard` (v1) and `poet` (v2)."""

    def __init__(self, store: Store):
        super().__init__(store=store, workers=8)
        self.lms = {"bard": ScriptedModel("bard", 1), "poet": ScriptedModel("poet", 2)}

    def models(self) -> list[dict]:
        return [lm.card for lm in self.lms.values()]

    def resolve(self, spec):
        name = (spec or "bard").split("@")[0]
        if name not in self.lms:
            raise GhostwriteError(f"unknown model {name!r}; see /models")
        return name, self.lms[name].version

    def model(self, spec):
        return self.lms[self.resolve(spec)[0]]

    def pace(self, delay: float) -> None:
        for lm in self.lms.values():
            lm.delay = delay


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTWRITE_HOME", str(tmp_path / "home"))
    s = Store(f"sqlite:///{tmp_path}/gw.db")
    yield s
    s.close()


@pytest.fixture
def svc(store):
    s = ScriptedService(store)
    yield s
    s.close()


def fast_config(**kw) -> DiscordConfig:
    base = dict(cooldown_rate=1, cooldown_per=0, max_concurrent=2, max_queue=2, edit_interval=0.2,
                progress_interval=0.05, shutdown_grace=2.0, models_refresh=3600)
    base.update(kw)
    return DiscordConfig(**base)


async def make_host_bot(svc, config: DiscordConfig | None = None, **bot_kw) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents, **bot_kw)
    bot.ghostwrite_service = svc
    bot.ghostwrite_config = config or fast_config()
    await bot._async_setup_hook()
    await bot.load_extension("bot.discord")
    return bot


@pytest_asyncio.fixture
async def slash_bot(svc):
    """A bot with the extension loaded, for the interaction harness (no gateway, no dpytest)."""
    bot = await make_host_bot(svc)
    bot.owner_id = 1
    yield bot
    if "bot.discord" in bot.extensions:
        await bot.unload_extension("bot.discord")
    await bot.close()


@pytest_asyncio.fixture
async def harness(slash_bot):
    """The interaction harness; afterwards it checks that every message the extension sent or edited
    allowed no mentions (generated text must never ping)."""
    async with Harness(slash_bot) as h:
        yield h
    loud = [c for c in h.calls if c.text is not None and c.body.get("allowed_mentions") != {"parse": []}]
    assert loud == [], f"sent without AllowedMentions.none(): {loud}"


@pytest_asyncio.fixture
async def dp_bot(svc):
    """A dpytest-driven bot with the extension loaded."""
    dpytest_shim.install()
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents)
    bot.ghostwrite_service = svc
    bot.ghostwrite_config = fast_config()
    await bot._async_setup_hook()
    await bot.load_extension("bot.discord")
    import discord.ext.test as dpytest

    dpytest.configure(bot)
    yield bot
    await dpytest_shim.teardown(bot)


# --------------------------------------------------------------------------- a real, tiny trained model
TINY_CORPUS = "/work/shared/corpora/tinyshakespeare.txt"


def _corpus_text() -> str:
    import os

    path = os.environ.get("GHOSTWRITE_TEST_CORPUS", TINY_CORPUS)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(60_000)
    except OSError:  # no shared corpus on this machine: a small public-domain-style text of our own
        line = ("ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n"
                "JULIET: O Romeo, Romeo, wherefore art thou Romeo? Deny thy father and refuse thy name.\n")
        return line * 300


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory):
    """A data directory holding `tiny@v1`, trained for a few steps by the real `ghostwrite train` CLI."""
    import os
    import pathlib
    import subprocess
    import sys

    if os.environ.get("GHOSTWRITE_TEST_TINY_HOME"):  # reuse one trained earlier (development)
        return pathlib.Path(os.environ["GHOSTWRITE_TEST_TINY_HOME"])
    home = tmp_path_factory.mktemp("gw-home")
    corpus = home / "corpus.txt"
    corpus.write_text(_corpus_text(), encoding="utf-8")
    env = dict(os.environ, GHOSTWRITE_HOME=str(home), GHOSTWRITE_DATABASE_URL=f"sqlite:///{home}/train.db")
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "train", str(corpus), "--name", "tiny", "--preset",
                           "tiny", "--max-steps", "8", "--threads", "1"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    if proc.returncode != 0:
        pytest.fail(f"training the tiny model failed:\n{proc.stdout}\n{proc.stderr}")
    return home


def copy_home(src, dst):
    import shutil

    shutil.copytree(src / "models", dst / "models")
    shutil.copy(src / "corpus.txt", dst / "corpus.txt")
    return dst
