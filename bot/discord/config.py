"""Settings of the Discord frontend itself (not per guild): limits, intervals, sizes.

Read from the environment so that a host bot can tune the extension without code; a host may also set
``bot.ghostwrite_config = DiscordConfig(...)`` before loading the extension.
"""

from __future__ import annotations

import dataclasses
import os
import typing

ENV_PREFIX = "GHOSTWRITE_DISCORD_"


# (least, most) each setting accepts from the environment: junk, NaN, ±inf or a value outside is one line
# of error naming the variable (GhostwriteError), read when the bot starts or the extension loads
LIMITS: dict[str, tuple[float, float]] = {
    "cooldown_rate": (1, 10_000), "cooldown_per": (0, 86_400), "max_concurrent": (1, 256),
    "max_queue": (0, 100_000), "queue_timeout": (0, 86_400), "edit_interval": (0, 3_600),
    "corpus_max_bytes": (1, 2**31), "retrain_max_time": (1, 6 * 3600), "progress_interval": (0, 3_600),
    "shutdown_grace": (0, 3_600), "history_limit": (1, 1_000), "models_refresh": (1, 86_400),
    "channel_corpus_min_chars": (1, 2**31), "channel_corpus_messages": (1, 1_000_000),
}


@dataclasses.dataclass
class DiscordConfig:
    cooldown_rate: int = 1            # generations per user ...
    cooldown_per: float = 5.0         # ... per this many seconds (0 disables)
    max_concurrent: int = 2           # generations at once, across the bot
    max_queue: int = 4                # waiting beyond that; more are told "busy, try again in N s"
    queue_timeout: float = 120.0      # longest wait in the queue
    edit_interval: float = 1.0        # seconds between streamed edits of a reply
    corpus_max_bytes: int = 10 * 1024 * 1024   # /retrain: largest accepted corpus file
    retrain_max_time: float = 1800.0  # /retrain: training time budget (seconds)
    progress_interval: float = 5.0    # /retrain: seconds between progress edits
    shutdown_grace: float = 20.0      # on unload/shutdown, how long in-flight generations may finish
    history_limit: int = 10           # /history: most entries shown
    models_refresh: float = 60.0      # seconds between refreshes of the cached model list (autocomplete)
    channel_corpus_min_chars: int = 5_000  # /retrain from-channel: the smallest corpus it trains on
    channel_corpus_messages: int = 20_000  # /retrain from-channel: the most messages it looks through

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None) -> "DiscordConfig":
        from bot.service import env

        environ = os.environ if environ is None else environ
        values: dict[str, typing.Any] = {}
        for field in dataclasses.fields(cls):
            name = ENV_PREFIX + field.name.upper()
            lo, hi = LIMITS[field.name]
            if field.type in ("int", int):
                values[field.name] = env.integer(name, field.default, int(lo), int(hi), environ)
            else:
                values[field.name] = env.number(name, field.default, lo, hi, environ)
        return cls(**values)
