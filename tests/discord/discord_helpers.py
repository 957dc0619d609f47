"""Helpers shared by the Discord tests (the fixtures in conftest.py use them; test modules import them from
here, never from `conftest`, whose module name other test folders share).

The `svc` fixture is the real `bot.service.ContinuationService` over a real `bot.store.Store` (SQLite in a temp dir); only
the model is replaced (`ScriptedModel`: deterministic words at a chosen pace, no torch), so the service's own
threads, streaming and store writes are exercised. The end-to-end tests use a real trained model instead.
"""

from __future__ import annotations

import threading
import time

import discord
from discord.ext import commands

from bot.discord.config import DiscordConfig
from bot.service import ContinuationService
from bot.store import Store
from generator.errors import GhostwriteError

WORDS = ("the quick brown fox jumps over a lazy dog and then. it sleeps! does it dream? "
         "yes, of <@123> and @everyone and *stars*\n").split(" ")


class ScriptedGeneration:
    def __init__(self, lm: "ScriptedModel", prompt: str, settings):
        self.lm, self.prompt, self.settings = lm, prompt, settings
        self.seed = settings.seed if settings.seed is not None else 7
        self.tokens_in = len(prompt)
        self.tokens_out = 0
        self.logprobs = None  # (the real generation's per-token log-probabilities, when asked for)
        self.finish_reason = None
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

    def generate(self, prompt, settings, **_options):  # (logprobs=... and whatever the real one takes)
        return ScriptedGeneration(self, prompt, settings)

    serve = generate  # (the real model batches `serve`; a scripted one needs no batching)


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

    def load_model(self, name, version):
        return self.lms[name]

    def pace(self, delay: float) -> None:
        for lm in self.lms.values():
            lm.delay = delay


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



def copy_home(src, dst):
    import shutil

    shutil.copytree(src / "models", dst / "models")
    shutil.copy(src / "corpus.txt", dst / "corpus.txt")
    return dst
