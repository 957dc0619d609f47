"""What the store holds, through the service: history, search, export, forgetting a user, votes, the
Discord message a generation was shown in, guild and channel settings, and channel stories. Each call is
one short store transaction (bot/store); the rows come back as the store's frozen records."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.store.records import Feedback, Generation, Story


class Records:
    """Mixed into ContinuationService, which holds `store` (opened on first use)."""

    store: Any
    metadata_only: Any  # (members.Members)

    # ---- history ------------------------------------------------------------------------------------
    def history(self, *, model: str | None = None, source: str | None = None, user_id: str | int | None = None,
                since: Any = None, limit: int | None = 50) -> list[Generation]:
        """Stored generations, newest first, filtered."""
        return self.store.list_generations(model=model, source=source, user_id=user_id, since=since, limit=limit)

    def generation(self, generation_id: int) -> Generation | None:
        return self.store.get(generation_id)

    def chain(self, generation_id: int) -> list[Generation]:
        """The generation after the chain of generations it continues, oldest first."""
        return self.store.chain(generation_id)

    def search(self, text: str, limit: int = 50) -> list[Generation]:
        return self.store.search(text, limit=limit)

    def export(self, fmt: str, file: IO[str], **filters: Any) -> int:
        """Every matching generation, oldest first, as JSON lines or CSV into `file`; returns how many."""
        return self.store.export(fmt, file, **filters)

    def stats(self) -> dict[str, Any]:
        return self.store.stats()

    def forget(self, user_id: str | int, dry_run: bool = False) -> dict[str, int]:
        """Delete everything stored about a user (with dry_run: only count it); their opt-ins end too."""
        counts = self.store.forget_user(user_id, dry_run=dry_run)
        opt_ins = self.store.withdraw_opt_ins(user_id, dry_run=dry_run)
        return counts | ({"opt_ins": opt_ins} if opt_ins else {})

    # ---- votes and messages -------------------------------------------------------------------------
    def votes(self, generation_id: int) -> list[Feedback]:
        return self.store.get_feedback(generation_id)

    def vote(self, generation_id: int, user_id: str | int, value: int, emoji: str | None = None) -> None:
        self.store.add_feedback(generation_id, user_id, value, emoji)

    def unvote(self, generation_id: int, user_id: str | int, emoji: str | None = None) -> int:
        return self.store.remove_feedback(generation_id, user_id, emoji)

    def find_by_message(self, message_id: str | int) -> Generation | None:
        return self.store.find_by_message(message_id)

    def set_message_id(self, generation_id: int, message_id: str | int | None) -> None:
        self.store.set_message_id(generation_id, message_id)

    # ---- guild and channel settings -----------------------------------------------------------------
    def guild_settings(self, guild_id: str | int | None, channel_id: str | int | None = None) -> dict:
        """The settings in force in a channel: the guild's, overridden by the channel's."""
        return self.store.get_settings(guild_id, channel_id)

    def all_settings(self, guild_id: str | int) -> dict:
        """{"guild": {...}, "channels": {channel id: {...}}}."""
        return self.store.all_settings(guild_id)

    def set_setting(self, scope: str, scope_id: str | int, key: str, value: Any,
                    guild_id: str | int | None = None) -> dict:
        """Set (None: clear) one setting of a guild or channel; returns that scope's settings."""
        return self.store.set_setting(scope, scope_id, key, value, guild_id=guild_id)

    # ---- stories ------------------------------------------------------------------------------------
    def start_story(self, guild_id: str | int | None, channel_id: str | int | None, text: str = "",
                    created_by: str | int | None = None) -> int:
        return self.store.start_story(guild_id, channel_id, "" if self.metadata_only(guild_id) else text, created_by)

    def active_story(self, guild_id: str | int | None, channel_id: str | int | None) -> Story | None:
        return self.store.active_story(guild_id, channel_id)

    def append_story(self, story_id: int, text: str) -> Story:
        """Add text to a story (nothing is kept when the story's server stores metadata only)."""
        story = self.store.get_story(story_id)
        if story is not None and self.metadata_only(story.guild_id):
            text = ""
        return self.store.append_story(story_id, text)

    def end_story(self, story_id: int) -> str:
        return self.store.end_story(story_id)
