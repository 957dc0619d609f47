"""Settings of the Discord frontend itself (not per guild): limits, intervals, sizes.

Read from the environment so that a host bot can tune the extension without code; a host may also set
``bot.ghostwrite_config = DiscordConfig(...)`` before loading the extension.
"""

from __future__ import annotations

import dataclasses
import os
import typing

ENV_PREFIX = "GHOSTWRITE_DISCORD_"


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

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None) -> "DiscordConfig":
        environ = os.environ if environ is None else environ
        values: dict[str, typing.Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw.strip() == "":
                continue
            kind = int if field.type in ("int", int) else float
            try:
                values[field.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX + field.name.upper()} must be a number, not {raw!r}") from None
        return cls(**values)
