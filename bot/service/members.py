"""Members' privacy, shared limits and personas, through the service (mixed into ContinuationService).

- Metadata only: with ``GHOSTWRITE_METADATA_ONLY=1`` (every frontend) or a server's ``metadata_only``
  setting (Discord), no prompt, output or story text is written anywhere — not to the database, not to the
  spool. `private_fields` is applied to every generation row on its way out (`generation._record`, before
  the database and before the spool), and stories keep no text (`records.start_story` / `append_story`).
- /ignoreme, /optin and /mydata: the members' choices and everything stored about one member.
- Cooldowns and the retraining lock live in the database, so every bot process on it (one per group of
  shards) counts a member once and runs one training job.
- Personas: a model's avatar image (``ghostwrite models set-avatar``), kept beside its versions.
"""

from __future__ import annotations

import logging
from typing import Any

from generator import env, registry
from generator.errors import GhostwriteError
from generator.paths import atomic_write_bytes, models_dir

log = logging.getLogger("ghostwrite.service")

METADATA_ENV = "GHOSTWRITE_METADATA_ONLY"
TEXT_FIELDS = ("prompt", "output")
AVATAR_MAX_BYTES = 8 * 1024 * 1024
_IMAGE_KINDS = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"))


def image_kind(data: bytes) -> str | None:
    """png, jpg, gif or webp from the file's first bytes (Discord takes these as avatars), else None."""
    for magic, kind in _IMAGE_KINDS:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


class Members:
    """Mixed into ContinuationService, which holds `store` (opened on first use)."""

    store: Any
    _private_guilds: dict[str, bool]
    resolve: Any  # (generation.Generating)

    # ---- metadata only -------------------------------------------------------------------------------
    def metadata_only(self, guild_id: str | int | None = None) -> bool:
        """Whether text may not be stored: the environment says so, or the server's setting does. When the
        database cannot say (it is down), a server's text is not stored unless it was seen allowed."""
        if env.flag(METADATA_ENV, False):
            return True
        if guild_id is None:
            return False
        gid = str(guild_id)
        if not hasattr(self, "_private_guilds"):
            self._private_guilds = {}
        try:
            on = bool(self.store.get_settings(gid).get("metadata_only"))
        except GhostwriteError:
            return self._private_guilds.get(gid, True)  # (privacy first: the setting cannot be read)
        self._private_guilds[gid] = on
        return on

    def private_fields(self, fields: dict) -> dict:
        """A generation row as it may be written: without its text when metadata only applies."""
        if not self.metadata_only(fields.get("guild_id")):
            return fields
        return {**fields, **{k: "" for k in TEXT_FIELDS}, "params": {**(fields.get("params") or {}), "metadata_only": True}}

    # ---- members' choices ----------------------------------------------------------------------------
    def set_ignored(self, user_id: str | int, ignored: bool) -> None:
        """/ignoreme: the bot neither reads nor stores this member's messages and commands (every server)."""
        self.store.set_member_pref(user_id, None, ignored=ignored)

    def is_ignored(self, user_id: str | int) -> bool:
        return self.store.is_ignored(user_id)

    def set_opt_in(self, user_id: str | int, guild_id: str | int, opted_in: bool) -> None:
        """/optin: this member's messages in this server may go into a corpus built from a channel."""
        self.store.set_member_pref(user_id, guild_id, opted_in=opted_in)

    def opted_in(self, guild_id: str | int) -> set[str]:
        return self.store.opted_in(guild_id)

    def user_data(self, user_id: str | int) -> dict[str, Any]:
        """Everything stored about a member (/mydata)."""
        return self.store.user_data(user_id)

    # ---- limits every process shares -----------------------------------------------------------------
    def hit_cooldown(self, key: str, rate: int, per: float) -> float | None:
        """Count a use of `key`; the seconds to wait instead when it was used `rate` times in `per` s."""
        return self.store.hit_cooldown(key, rate, per)

    def reset_cooldown(self, key: str) -> None:
        self.store.reset_cooldown(key)

    # ---- story threads -------------------------------------------------------------------------------
    def set_story_thread(self, story_id: int, thread_id: str | int | None, parent_channel_id: str | int | None,
                         mode: str = "every") -> None:
        self.store.set_story_thread(story_id, thread_id, parent_channel_id, mode)

    def story_thread(self, story_id: int) -> dict | None:
        return self.store.story_thread(story_id)

    # ---- personas ------------------------------------------------------------------------------------
    def set_avatar(self, name: str, data: bytes) -> str:
        """Keep `data` (PNG, JPEG, GIF or WebP, up to 8 MB) as model `name`'s avatar; returns its kind."""
        name = self.resolve(registry.check_name(name))[0]  # an unknown model: its one-line error
        if len(data) > AVATAR_MAX_BYTES:
            raise GhostwriteError(f"an avatar is at most {AVATAR_MAX_BYTES // (1024 * 1024)} MB; this one is "
                                  f"{len(data):,} bytes")
        kind = image_kind(data)
        if kind is None:
            raise GhostwriteError("an avatar is a PNG, JPEG, GIF or WebP image")
        folder = models_dir() / registry.check_name(name)
        for old in folder.glob("avatar.*"):
            if old.suffix != f".{kind}":
                old.unlink(missing_ok=True)
        atomic_write_bytes(folder / f"avatar.{kind}", data)
        return kind

    def avatar(self, name: str) -> bytes | None:
        """Model `name`'s avatar image, or None."""
        folder = models_dir() / registry.check_name(name)
        for path in sorted(folder.glob("avatar.*")):
            try:
                return path.read_bytes()
            except OSError:
                log.warning("unreadable avatar %s", path)
        return None
