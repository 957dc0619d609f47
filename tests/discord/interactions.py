"""Slash commands and buttons without Discord: real INTERACTION_CREATE payloads through the real command tree.

* ``payloads``: plain builders for the Discord JSON shapes discord.py 2.7 parses (users, members, channels,
  messages, interactions). ``fake_discord`` uses them too.
* ``RecordingAdapter``: stands in for discord.py's ``AsyncWebhookAdapter`` (every interaction response and
  webhook follow-up goes through it). It records ``Call(method, path, payload, files)`` in order, answers with
  plausible message dicts and, like Discord, rejects ``content`` over 2,000 characters (HTTP 400, code 50035).
* ``Harness``: binds a bot to the adapter; ``await h.slash("continue", prompt="x")`` builds the payload, hands
  it to ``bot._connection.parse_interaction_create`` and waits for the tasks discord.py starts for it.

Private discord.py names relied on (pinned to discord.py 2.7.1 in the dev extra): ``async_context``,
``ConnectionState.parse_interaction_create``, ``ConnectionState._command_tree``, task names
``CommandTree-invoker`` and ``discord-ui-*``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
import typing

import discord
from discord.webhook import async_ as webhook_async

APP_ID = 900000000000000001
BOT_USER_ID = APP_ID
GUILD_ID = 900000000000000100
CHANNEL_ID = 900000000000000200
USER_ID = 900000000000000300
OWNER_ID = 900000000000000999
ADMIN_PERMISSIONS = str(discord.Permissions.all().value)
MEMBER_PERMISSIONS = str(discord.Permissions(send_messages=True, read_messages=True, add_reactions=True,
                                             use_application_commands=True, attach_files=True).value)

_counter = itertools.count(1)


def snowflake() -> int:
    """A current snowflake, unique within the process (interactions with old ids count as expired)."""
    return discord.utils.time_snowflake(discord.utils.utcnow()) + next(_counter) % 4096


def now_iso() -> str:
    return discord.utils.utcnow().isoformat()


# --------------------------------------------------------------------------------------------- payloads
def user_payload(user_id: int = USER_ID, name: str = "ann", *, bot: bool = False) -> dict:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name, "avatar": None,
            "bot": bot, "public_flags": 0}


def member_payload(user_id: int = USER_ID, name: str = "ann", *, permissions: str | None = None,
                   bot: bool = False) -> dict:
    data = {"user": user_payload(user_id, name, bot=bot), "roles": [], "joined_at": now_iso(), "nick": None,
            "deaf": False, "mute": False, "flags": 0, "pending": False, "avatar": None}
    if permissions is not None:
        data["permissions"] = permissions
    return data


def channel_payload(channel_id: int = CHANNEL_ID, guild_id: int | None = GUILD_ID, name: str = "general") -> dict:
    data = {"id": str(channel_id), "type": 0, "name": name, "position": 0, "permission_overwrites": [],
            "nsfw": False, "parent_id": None, "topic": None, "last_message_id": None, "rate_limit_per_user": 0}
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    return data


def message_payload(content: str = "", *, message_id: int | None = None, channel_id: int = CHANNEL_ID,
                    guild_id: int | None = None, author: dict | None = None, member: dict | None = None,
                    mentions: list[dict] | None = None, embeds=None, components=None, attachments=None,
                    flags: int = 0, webhook_id: int | None = None) -> dict:
    data = {
        "id": str(message_id or snowflake()), "channel_id": str(channel_id), "type": 0, "content": content,
        "author": author or user_payload(BOT_USER_ID, "ghostwrite", bot=True), "timestamp": now_iso(),
        "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": mentions or [],
        "mention_roles": [], "attachments": attachments or [], "embeds": embeds or [], "pinned": False,
        "components": components or [], "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    if member is not None:
        data["member"] = member
    if webhook_id is not None:
        data["webhook_id"] = str(webhook_id)
    return data


def attachment_payload(filename: str, size: int, *, attachment_id: int | None = None,
                       url: str = "http://127.0.0.1:9/attachments/file.txt", content_type: str = "text/plain") -> dict:
    return {"id": str(attachment_id or snowflake()), "filename": filename, "size": size, "url": url,
            "proxy_url": url, "content_type": content_type}


def role_payload(role_id: int, name: str, permissions: int, position: int = 0) -> dict:
    return {"id": str(role_id), "name": name, "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False, "position": position, "permissions": str(permissions), "managed": False,
            "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}


def guild_payload(guild_id: int = GUILD_ID, channel_ids: typing.Sequence[int] = (CHANNEL_ID,),
                  owner_id: int = OWNER_ID) -> dict:
    everyone = 1 | 1024 | 2048 | 64 | 32768 | (1 << 31)  # invite, view, send, react, attach, app commands
    return {
        "id": str(guild_id), "name": "Fake Guild", "icon": None, "splash": None, "discovery_splash": None,
        "owner_id": str(owner_id), "afk_channel_id": None, "afk_timeout": 300, "verification_level": 0,
        "default_message_notifications": 0, "explicit_content_filter": 0,
        "roles": [role_payload(guild_id, "@everyone", everyone)], "emojis": [], "stickers": [],
        "features": [], "mfa_level": 0, "system_channel_id": None, "system_channel_flags": 0,
        "rules_channel_id": None, "vanity_url_code": None, "description": None, "banner": None,
        "premium_tier": 0, "preferred_locale": "en-US", "public_updates_channel_id": None, "nsfw_level": 0,
        "premium_progress_bar_enabled": False, "member_count": 3, "large": False, "unavailable": False,
        "joined_at": now_iso(), "threads": [], "voice_states": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [], "soundboard_sounds": [],
        "channels": [channel_payload(cid, None, f"chan-{i}") for i, cid in enumerate(channel_ids)],
        "members": [member_payload(BOT_USER_ID, "ghostwrite", bot=True)],
    }


_OPTION_TYPES = {str: 3, int: 4, bool: 5, float: 10}


def option(name: str, value: typing.Any, type_: int | None = None) -> dict:
    if type_ is None:
        type_ = _OPTION_TYPES[type(value)]
    return {"name": name, "type": type_, "value": value}


def interaction_payload(name: str, options: list[dict] | None = None, *, subcommand: str | None = None,
                        user_id: int = USER_ID, user_name: str = "ann", permissions: str = MEMBER_PERMISSIONS,
                        guild_id: int | None = GUILD_ID, channel_id: int = CHANNEL_ID, app_id: int = APP_ID,
                        resolved: dict | None = None, interaction_id: int | None = None,
                        token: str | None = None) -> dict:
    """An application-command INTERACTION_CREATE payload (type 2), optionally for `/name subcommand`."""
    options = list(options or [])
    if subcommand:
        options = [{"name": subcommand, "type": 1, "options": options}]
    iid = interaction_id or snowflake()
    data = {"id": str(snowflake()), "name": name, "type": 1, "options": options}
    if resolved:
        data["resolved"] = resolved
    return _interaction(2, data, iid=iid, token=token, user_id=user_id, user_name=user_name,
                        permissions=permissions, guild_id=guild_id, channel_id=channel_id, app_id=app_id)


def component_payload(custom_id: str, message: dict, *, user_id: int = USER_ID, user_name: str = "ann",
                      permissions: str = MEMBER_PERMISSIONS, guild_id: int | None = GUILD_ID,
                      channel_id: int = CHANNEL_ID, app_id: int = APP_ID) -> dict:
    """A button press (type 3) on `message` (a message payload the bot sent)."""
    data = {"custom_id": custom_id, "component_type": 2}
    payload = _interaction(3, data, iid=snowflake(), token=None, user_id=user_id, user_name=user_name,
                           permissions=permissions, guild_id=guild_id, channel_id=channel_id, app_id=app_id)
    payload["message"] = message
    return payload


def _interaction(kind, data, *, iid, token, user_id, user_name, permissions, guild_id, channel_id, app_id) -> dict:
    payload = {
        "id": str(iid), "application_id": str(app_id), "type": kind, "token": token or f"tok-{iid}",
        "version": 1, "data": data, "channel_id": str(channel_id),
        "channel": channel_payload(channel_id, guild_id), "locale": "en-US",
        "app_permissions": ADMIN_PERMISSIONS, "attachment_size_limit": 10 * 1024 * 1024,
        "entitlements": [], "authorizing_integration_owners": {"0": str(guild_id or 0)},
        "context": 0 if guild_id else 1,
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
        payload["guild_locale"] = "en-US"
        payload["member"] = member_payload(user_id, user_name, permissions=permissions)
    else:
        payload["user"] = user_payload(user_id, user_name)
    return payload


# --------------------------------------------------------------------------------------------- recording
@dataclasses.dataclass
class Call:
    method: str
    path: str
    payload: dict | None
    files: list[str] = dataclasses.field(default_factory=list)
    at: float = dataclasses.field(default_factory=time.monotonic)  # when it was made (monotonic clock)

    @property
    def content(self) -> str | None:
        return self.payload.get("content") if isinstance(self.payload, dict) else None

    @property
    def body(self) -> dict:
        """The message part of the payload (an interaction callback nests it under "data")."""
        p = self.payload if isinstance(self.payload, dict) else {}
        return p["data"] if self.path.endswith("/callback") and isinstance(p.get("data"), dict) else p

    @property
    def text(self) -> str | None:
        return self.body.get("content")

    @property
    def ephemeral(self) -> bool:
        return bool(self.body.get("flags", 0) & 64)

    def kind(self) -> str:
        """'defer' | 'respond' | 'edit' | 'followup' | 'delete' | 'other' — the shape of the call."""
        if self.path.endswith("/callback"):
            return "defer" if (self.payload or {}).get("type") in (5, 6) else "respond"
        if self.method == "PATCH" and "/messages/" in self.path:
            return "edit"
        if self.method == "POST" and self.path.startswith("/webhooks/"):
            return "followup"
        if self.method == "DELETE":
            return "delete"
        return "other"


class _FakeResponse:
    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason


def content_error(limit: int = 2000) -> dict:
    return {"code": 50035, "message": "Invalid Form Body",
            "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                                "message": f"Must be {limit} or fewer in length."}]}}}


class RecordingAdapter(webhook_async.AsyncWebhookAdapter):
    """Answers interaction and webhook requests locally and records them."""

    def __init__(self, *, content_limit: int = 2000, delay: float = 0.0):
        super().__init__()
        self.calls: list[Call] = []
        self.content_limit = content_limit
        self.delay = delay
        self._messages: dict[str, dict] = {}  # path of a message → its current dict
        self.interactions: dict[str, dict] = {}  # token → interaction payload (for channel ids)

    async def request(self, route, session=None, *, payload=None, multipart=None, files=None, params=None,
                      **_kw) -> typing.Any:
        if payload is None and multipart:
            for part in multipart:
                if part.get("name") == "payload_json":
                    payload = json.loads(part["value"])
        path = route.url[len(route.BASE):] if route.url.startswith(route.BASE) else route.url
        call = Call(route.method, path, payload, [f.filename for f in (files or [])])
        self.calls.append(call)
        if self.delay:
            await asyncio.sleep(self.delay)
        content = (payload or {}).get("content")
        if content is None and isinstance((payload or {}).get("data"), dict):
            content = payload["data"].get("content")
        if content is not None and len(content) > self.content_limit:
            raise discord.HTTPException(_FakeResponse(400, "Bad Request"), content_error(self.content_limit))
        if path.endswith("/callback"):
            kind = (payload or {}).get("type")
            flags = ((payload or {}).get("data") or {}).get("flags", 0)
            return {"interaction": {"id": path.split("/")[2], "type": 2,
                                    "response_message_loading": kind == 5,
                                    "response_message_ephemeral": bool(flags & 64)}}
        if route.method == "DELETE":
            return None
        token = path.split("/")[3] if path.startswith("/webhooks/") else ""
        channel_id = int(self.interactions.get(token, {}).get("channel_id", CHANNEL_ID))
        if route.method == "POST":  # follow-up: a new message
            msg = message_payload(content or "", channel_id=channel_id, webhook_id=APP_ID,
                                  components=(payload or {}).get("components"),
                                  flags=(payload or {}).get("flags", 0))
            self._messages[f"{path}/messages/{msg['id']}"] = msg
            return msg
        # PATCH/GET on @original or a follow-up id
        msg = self._messages.get(path)
        if msg is None:
            msg = message_payload("", channel_id=channel_id, webhook_id=APP_ID)
            self._messages[path] = msg
        if payload:
            for key in ("content", "components", "embeds", "flags"):
                if key in payload:
                    msg[key] = payload[key]
            msg["edited_timestamp"] = now_iso()
        return dict(msg)

    # conveniences for assertions
    def kinds(self) -> list[str]:
        return [c.kind() for c in self.calls]

    def reset(self) -> None:
        self.calls.clear()


class Harness:
    """Feeds interactions to `bot` and records its HTTP answers. Use as an async context manager or call
    `install()`/`uninstall()` (the adapter lives in a ContextVar, so install it in the test's own task)."""

    def __init__(self, bot: discord.Client, *, content_limit: int = 2000, timeout: float = 20.0,
                 guild: bool = True):
        self.bot = bot
        self.guild = guild
        self.adapter = RecordingAdapter(content_limit=content_limit)
        self.timeout = timeout
        self._token = None

    @property
    def calls(self) -> list[Call]:
        return self.adapter.calls

    def install(self) -> "Harness":
        state = self.bot._connection
        if getattr(self.bot, "tree", None) is not None:
            state._command_tree = self.bot.tree
        if state.user is None:
            state.user = discord.ClientUser(state=state, data=user_payload(BOT_USER_ID, "ghostwrite", bot=True))
        if self.bot.application_id is None:
            state.application_id = APP_ID
        if self.guild and state._get_guild(GUILD_ID) is None:  # as after GUILD_CREATE: channels resolve
            state._add_guild_from_data(guild_payload(GUILD_ID, (CHANNEL_ID, CHANNEL_ID + 1)))
        self._token = webhook_async.async_context.set(self.adapter)
        return self

    def uninstall(self) -> None:
        if self._token is not None:
            webhook_async.async_context.reset(self._token)
            self._token = None

    async def __aenter__(self) -> "Harness":
        return self.install()

    async def __aexit__(self, *exc) -> None:
        self.uninstall()

    async def dispatch(self, payload: dict, *, wait: bool = True) -> list[asyncio.Task]:
        """Hand `payload` to the connection state; optionally wait for the tasks discord.py starts for it."""
        self.adapter.interactions[payload["token"]] = payload
        before = set(asyncio.all_tasks())
        self.bot._connection.parse_interaction_create(payload)
        await asyncio.sleep(0)
        tasks = [t for t in asyncio.all_tasks() - before
                 if t.get_name().startswith(("CommandTree-invoker", "discord-ui-view-dispatch",
                                              "discord-ui-dynamic-item"))]
        if wait and tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), self.timeout)
        return tasks

    async def slash(self, command: str, /, *, subcommand: str | None = None, wait: bool = True, user_id: int = USER_ID,
                    permissions: str = MEMBER_PERMISSIONS, channel_id: int = CHANNEL_ID,
                    guild_id: int | None = GUILD_ID, resolved: dict | None = None,
                    raw_options: list[dict] | None = None, **options: typing.Any) -> dict:
        opts = list(raw_options or []) + [option(k, v) for k, v in options.items()]
        payload = interaction_payload(command, opts, subcommand=subcommand, user_id=user_id, permissions=permissions,
                                      channel_id=channel_id, guild_id=guild_id, resolved=resolved)
        await self.dispatch(payload, wait=wait)
        return payload

    async def press(self, custom_id: str, message: dict, *, user_id: int = USER_ID, wait: bool = True,
                    channel_id: int = CHANNEL_ID) -> dict:
        payload = component_payload(custom_id, message, user_id=user_id, channel_id=channel_id)
        await self.dispatch(payload, wait=wait)
        return payload

    def replies(self) -> list[Call]:
        """Calls that carried message content (skips GETs of the original response etc.)."""
        return [c for c in self.calls if c.text is not None]

    def last_message(self) -> dict | None:
        """The last message dict the adapter handed back (for pressing its buttons)."""
        msgs = list(self.adapter._messages.values())
        return msgs[-1] if msgs else None
