"""A fake Discord (REST + gateway) on 127.0.0.1 for end-to-end tests of an unmodified discord.py client.

Point a client at it with ``discord.http.Route.BASE = server.api_base`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(server.gateway_url)`` (ghostwrite's runner does
this from ``GHOSTWRITE_DISCORD_API_BASE`` / ``GHOSTWRITE_DISCORD_GATEWAY``; ``server.env()`` gives both).

Every REST request is recorded in ``server.calls`` as ``Call(method, path, payload, files)`` (path without the
``/api/v10`` prefix, payload the JSON body or the multipart ``payload_json``). Like Discord it rejects message
content over 2,000 characters with HTTP 400 and code 50035, and answers with ``Content-Type:
application/json`` exactly (discord.py decodes nothing else). Tests inject gateway events with
``send_interaction``, ``send_message`` and ``add_reaction`` (or ``dispatch`` for any event).

Gateway frames are text JSON (discord.py only decompresses binary frames, so no zlib is needed).

Shards: each IDENTIFY's ``shard: [id, count]`` gets its own connection, READY and the GUILD_CREATEs of the
guilds Discord's formula puts on it (``(guild_id >> 22) % count``); events go to the connection of their
guild, so two processes that each run some shards see only their guilds' events (``guild_ids`` gives the
fake several guilds; ``guild_on_shard`` picks one for a shard). Threads (created from a message, listed
in GUILD_CREATE, archived by PATCH), channel webhooks (created, listed, executed, their messages edited;
``webhook_avatars`` keeps the images) and channel history (``GET /channels/{id}/messages``) are served too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import typing

import aiohttp
from aiohttp import web
from interactions import (  # noqa: F401
    APP_ID,
    BOT_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    OWNER_ID,
    USER_ID,
    Call,
    attachment_payload,
    channel_payload,
    content_error,
    guild_payload,
    interaction_payload,
    member_payload,
    message_payload,
    now_iso,
    snowflake,
    user_payload,
)

TOKEN = "fake-token.for-tests.only"


def _json(data: typing.Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py's json_or_text compares the header verbatim.
    return web.Response(status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})


class FakeDiscord:
    def __init__(self, *, guild_id: int = GUILD_ID, channel_ids: typing.Sequence[int] = (CHANNEL_ID,),
                 content_limit: int = 2000, guild_ids: typing.Sequence[int] = ()):
        self.guild_id = guild_id
        self.channel_ids = list(channel_ids)
        self.guild_ids = [guild_id, *[g for g in guild_ids if g != guild_id]]  # others: one channel each, id + 1
        self.shards: dict[int, web.WebSocketResponse] = {}   # shard id → its gateway connection
        self.identify_payloads: dict[int, dict] = {}          # shard id → its IDENTIFY
        self.threads: dict[str, dict] = {}                    # thread id → channel payload (type 11)
        self.webhooks: dict[str, dict] = {}                   # webhook id → webhook payload (with token)
        self.webhook_avatars: dict[str, bytes | None] = {}
        self.bot_roles: list[dict] = []                       # roles given to the bot's member (permissions)
        self._shard_count = 1
        self._query: dict = {}
        self.content_limit = content_limit
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}          # "<message id>/<filename>" → bytes uploaded by the bot
        self.messages: dict[str, dict] = {}         # message id → current payload
        self.originals: dict[str, str] = {}         # interaction token → @original message id
        self.commands: dict[str, list] = {}         # "global" | guild id → synced command list
        self.token_channels: dict[str, str] = {}    # interaction token → channel id
        self.identified = asyncio.Event()
        self.gateway_closed = asyncio.Event()
        self.identify_payload: dict | None = None
        self._attachments: dict[str, bytes] = {}
        self._ws: web.WebSocketResponse | None = None
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "FakeDiscord":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{aid}/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> "FakeDiscord":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def env(self) -> dict[str, str]:
        return {"GHOSTWRITE_DISCORD_API_BASE": self.api_base, "GHOSTWRITE_DISCORD_GATEWAY": self.gateway_url}

    # ------------------------------------------------------------------ gateway
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._ws = ws
        self.gateway_closed.clear()
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                # Not instantly: discord.py's heartbeat thread stamps the send after the write returns, and an
                # ACK faster than that reads as a 41 s latency ("Can't keep up"). Real Discord takes ~50 ms.
                await asyncio.sleep(0.05)
                await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
            elif op == 2:
                self.identify_payload = frame["d"]
                shard, count = (frame["d"].get("shard") or [0, 1])[:2]
                self.shards[shard], self._shard_count = ws, count
                self.identify_payloads[shard] = frame["d"]
                self._ws = ws
                await self._send_ready(shard, count)
                self.identified.set()
            elif op == 6:  # RESUME: we keep no session; tell it to identify again
                await ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
        self.gateway_closed.set()
        return ws

    @staticmethod
    def shard_of(guild_id: int, count: int) -> int:
        return (int(guild_id) >> 22) % count

    def guild_on_shard(self, shard: int, count: int) -> int:
        return next(g for g in self.guild_ids if self.shard_of(g, count) == shard)

    def _guild(self, guild_id: int) -> dict:
        channels = self.channel_ids if guild_id == self.guild_id else [guild_id + 1]
        data = guild_payload(guild_id, channels)
        data["threads"] = [t for t in self.threads.values()
                           if t["guild_id"] == str(guild_id) and not t["thread_metadata"]["archived"]]
        if self.bot_roles:
            data["roles"] += self.bot_roles
            data["members"][0]["roles"] = [r["id"] for r in self.bot_roles]
        return data

    async def _send_ready(self, shard: int = 0, count: int = 1) -> None:
        mine = [g for g in self.guild_ids if self.shard_of(g, count) == shard]
        await self.dispatch("READY", {
            "v": 10, "user": user_payload(BOT_USER_ID, "ghostwrite", bot=True) | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in mine], "session_id": f"fake-session-{shard}",
            "resume_gateway_url": self.gateway_url, "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [], "relationships": [], "shard": [shard, count],
        }, shard=shard)
        for g in mine:
            await self.dispatch("GUILD_CREATE", self._guild(g), shard=shard)

    async def dispatch(self, event: str, data: dict, *, shard: int | None = None) -> None:
        """Send an event on the connection of `shard`, else of the event's guild's shard."""
        if shard is None and isinstance(data, dict) and data.get("guild_id") and self.shards:
            shard = self.shard_of(int(data["guild_id"]), self._shard_count)
        ws = self.shards.get(shard, self._ws) if shard is not None else self._ws
        if ws is None or ws.closed:
            raise RuntimeError(f"no gateway connection for shard {shard}")
        await ws.send_str(json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data}))

    async def send_interaction(self, name: str, options: list[dict] | None = None, **kw) -> dict:
        kw.setdefault("guild_id", self.guild_id)
        kw.setdefault("channel_id", self.channel_ids[0])
        return await self.send_raw_interaction(interaction_payload(name, options, **kw))

    async def send_raw_interaction(self, payload: dict) -> dict:
        self.token_channels[payload["token"]] = payload["channel_id"]
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def send_message(self, content: str, *, user_id: int = USER_ID, user_name: str = "ann",
                           channel_id: int | None = None, mentions: list[dict] | None = None,
                           attachments: list[dict] | None = None, guild_id: int | None = None) -> dict:
        msg = message_payload(content, channel_id=channel_id or self.channel_ids[0], guild_id=guild_id or self.guild_id,
                              author=user_payload(user_id, user_name), mentions=mentions, attachments=attachments,
                              member={k: v for k, v in member_payload(user_id, user_name).items() if k != "user"})
        self.messages[msg["id"]] = msg
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def add_reaction(self, message_id: str | int, emoji: str, *, user_id: int = USER_ID,
                           channel_id: int | None = None) -> None:
        await self.dispatch("MESSAGE_REACTION_ADD", {
            "user_id": str(user_id), "channel_id": str(channel_id or self.channel_ids[0]),
            "message_id": str(message_id), "guild_id": str(self.guild_id),
            "emoji": {"id": None, "name": emoji}, "type": 0, "burst": False, "burst_colors": [],
            "member": member_payload(user_id, "ann"),
        })

    def add_attachment(self, filename: str, data: bytes) -> dict:
        """Serve `data` at a URL on this server; returns the attachment payload to put in an interaction."""
        aid = str(snowflake())
        self._attachments[aid] = data
        return attachment_payload(filename, len(data), attachment_id=int(aid),
                                  url=f"{self.base}/attachments/{aid}/{filename}")

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self._attachments.get(request.match_info["aid"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, headers={"Content-Type": "text/plain"})

    # ------------------------------------------------------------------ REST
    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        payload, files = None, {}
        if request.content_type == "application/json":
            payload = await request.json()
        elif request.content_type.startswith("multipart/"):
            form = await request.post()
            for key, value in form.items():
                if key == "payload_json":
                    payload = json.loads(value)
                elif hasattr(value, "file"):
                    files[value.filename] = value.file.read()
        call = Call(request.method, path, payload, list(files))
        self.calls.append(call)
        self._query = dict(request.query)
        content = call.text
        if content is not None and len(content) > self.content_limit:
            return _json(content_error(self.content_limit), 400)
        parts = path.strip("/").split("/")
        try:
            result = self._route(request.method, parts, payload if payload is not None else {}, files)
        except KeyError:
            result = None
        if result is None:
            return _json({"message": "404: Not Found", "code": 0}, 404)
        if result == 204:
            return web.Response(status=204)
        if isinstance(result, dict) and result.get("type") == 11 and path.endswith("/threads"):
            asyncio.get_running_loop().call_soon(asyncio.ensure_future, self.dispatch("THREAD_CREATE", result))
        return _json(result)

    def _route(self, method: str, p: list[str], payload: dict, files: dict) -> typing.Any:
        if p == ["users", "@me"]:
            return user_payload(BOT_USER_ID, "ghostwrite", bot=True) | {"verified": True, "mfa_enabled": False}
        if p == ["oauth2", "applications", "@me"]:
            return {"id": str(APP_ID), "name": "ghostwrite", "description": "", "icon": None, "bot_public": True,
                    "bot_require_code_grant": False, "owner": user_payload(OWNER_ID, "owner"),
                    "verify_key": "0" * 64, "flags": 0, "team": None, "summary": ""}
        if p[:1] == ["gateway"]:
            return {"url": self.gateway_url, "shards": 1,
                    "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0,
                                            "max_concurrency": 1}}
        if p[0] == "applications" and p[-1] == "commands" and method == "PUT":
            scope = p[3] if len(p) == 5 else "global"
            self.commands[scope] = payload if isinstance(payload, list) else []
            return [dict(c, id=str(snowflake()), application_id=str(APP_ID), version="1") for c in self.commands[scope]]
        if p[0] == "channels":
            return self._channel_route(method, p, payload, files)
        if p[0] == "interactions" and p[-1] == "callback":
            return self._callback(p[2], payload, files)
        if p[0] == "webhooks":
            return self._webhook_route(method, p, payload, files)
        return None

    def _new_message(self, channel_id: str, payload: dict, files: dict, *, webhook: bool = False,
                     hook: dict | None = None) -> dict:
        attachments = [attachment_payload(name, len(data)) for name, data in files.items()]
        author = None
        if hook is not None:
            author = user_payload(int(hook["id"]), payload.get("username") or hook["name"], bot=True)
        msg = message_payload(payload.get("content") or "", channel_id=int(channel_id), guild_id=self.guild_id,
                              components=payload.get("components"), embeds=payload.get("embeds"),
                              flags=payload.get("flags", 0), attachments=attachments, author=author,
                              webhook_id=int(hook["id"]) if hook else APP_ID if webhook else None)
        self.messages[msg["id"]] = msg
        for name, data in files.items():
            self.files[f"{msg['id']}/{name}"] = data
        return msg

    def _edit(self, message_id: str, payload: dict) -> dict | None:
        msg = self.messages.get(message_id)
        if msg is None:
            return None
        for key in ("content", "components", "embeds", "flags"):
            if key in payload:
                msg[key] = payload[key]
        msg["edited_timestamp"] = now_iso()
        return msg

    def _channel_route(self, method, p, payload, files):
        cid = p[1]
        if len(p) == 2 and cid in self.threads:
            thread = self.threads[cid]
            if method == "PATCH":
                for key in ("archived", "locked", "auto_archive_duration"):
                    if key in payload:
                        thread["thread_metadata"][key] = payload[key]
                if "name" in payload:
                    thread["name"] = payload["name"]
            return thread
        if len(p) == 2 and method == "GET":
            return channel_payload(int(cid), self.guild_id)
        if p[2] == "typing":
            return 204
        if p[2] == "webhooks":
            if method == "GET":
                return [h for h in self.webhooks.values() if h["channel_id"] == cid]
            return self._new_webhook(cid, payload)
        if p[2] == "messages":
            if len(p) == 3 and method == "POST":
                return self._new_message(cid, payload, files)
            if len(p) == 3 and method == "GET":
                return self._history(cid)
            if len(p) == 5 and p[4] == "threads" and method == "POST":
                return self._new_thread(cid, p[3], payload)
            mid = p[3]
            if len(p) == 4:
                if method == "PATCH":
                    return self._edit(mid, payload)
                if method == "GET":
                    return self.messages.get(mid)
                if method == "DELETE":
                    return 204 if self.messages.pop(mid, None) else None
            if len(p) >= 6 and p[4] == "reactions":
                return 204
        return None

    def _callback(self, interaction_token: str, payload: dict, files: dict) -> dict:
        kind = payload.get("type")
        data = payload.get("data") or {}
        result = {"interaction": {"id": str(snowflake()), "type": 2, "response_message_loading": kind == 5,
                                  "response_message_ephemeral": bool(data.get("flags", 0) & 64)}}
        if kind in (4, 5):
            msg = self._new_message(self.token_channels.get(interaction_token, str(CHANNEL_ID)),
                                    data | ({"flags": 128} if kind == 5 else {}), files, webhook=True)
            self.originals[interaction_token] = msg["id"]
            result["interaction"]["response_message_id"] = msg["id"]
            result["resource"] = {"type": kind, "message": msg}
        return result

    def _new_thread(self, channel_id: str, message_id: str, payload: dict) -> dict:
        tid = message_id  # Discord gives a thread started from a message that message's id
        thread = {"id": tid, "type": 11, "guild_id": str(self.guild_id), "parent_id": channel_id,
                  "name": payload.get("name", "thread"), "owner_id": str(BOT_USER_ID), "message_count": 0,
                  "member_count": 1, "rate_limit_per_user": 0, "last_message_id": None, "flags": 0,
                  "thread_metadata": {"archived": False, "auto_archive_duration": payload.get("auto_archive_duration", 1440),
                                      "archive_timestamp": now_iso(), "locked": False}}
        self.threads[tid] = thread
        return thread

    def _new_webhook(self, channel_id: str, payload: dict) -> dict:
        import base64

        wid = str(snowflake())
        avatar = payload.get("avatar")
        self.webhook_avatars[wid] = base64.b64decode(avatar.split(",", 1)[1]) if avatar else None
        hook = {"id": wid, "type": 1, "guild_id": str(self.guild_id), "channel_id": channel_id,
                "user": user_payload(BOT_USER_ID, "ghostwrite", bot=True), "name": payload.get("name"),
                "avatar": f"{int(wid):x}" if avatar else None, "token": f"hook-token-{wid}",
                "application_id": str(APP_ID)}
        self.webhooks[wid] = hook
        return hook

    def _history(self, channel_id: str) -> list[dict]:
        before = int(self._query.get("before", 1 << 63))
        limit = int(self._query.get("limit", 50))
        found = sorted((m for m in self.messages.values() if m["channel_id"] == channel_id and int(m["id"]) < before),
                       key=lambda m: int(m["id"]), reverse=True)
        return found[:limit]

    def _webhook_route(self, method, p, payload, files):
        hook = self.webhooks.get(p[1])
        if hook is not None:  # a channel webhook (a persona), not an interaction's
            channel = self._query.get("thread_id") or hook["channel_id"]
            if len(p) == 3 and method == "POST":
                return self._new_message(channel, payload, files, hook=hook)
            if len(p) == 5 and p[3] == "messages" and method == "PATCH":
                return self._edit(p[4], payload)
            return None
        if p[1] != str(APP_ID):
            return None  # a deleted (or never made) channel webhook: 404 Unknown Webhook
        token = p[2]
        if len(p) == 3 and method == "POST":
            return self._new_message(self.token_channels.get(token, str(CHANNEL_ID)), payload, files, webhook=True)
        if len(p) == 5 and p[3] == "messages":
            mid = self.originals.get(token) if p[4] == "@original" else p[4]
            if mid is None:
                return None
            if method == "PATCH":
                msg = self._edit(mid, payload)
                if msg is not None and p[4] == "@original":
                    msg["flags"] = msg.get("flags", 0) & ~128
                for name, data in files.items():
                    self.files[f"{mid}/{name}"] = data
                return msg
            if method == "GET":
                return self.messages.get(mid)
            if method == "DELETE":
                return 204
        return None

    # ------------------------------------------------------------------ assertions
    async def wait_for_call(self, predicate: typing.Callable[[Call], bool], timeout: float = 15.0,
                            start: int = 0) -> Call:
        """The first recorded call from index `start` on that matches `predicate`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for call in self.calls[start:]:
                if predicate(call):
                    return call
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching call within {timeout}s; calls: {self.trace(start)}")
            await asyncio.sleep(0.02)

    def trace(self, start: int = 0, end: int | None = None) -> list[str]:
        out = []
        calls = self.calls[start:end]
        t0 = calls[0].at if calls else 0.0
        for c in calls:
            extra = ""
            if isinstance(c.payload, list):
                extra = f" [{len(c.payload)} commands]"
            elif c.payload is not None:
                text = c.text
                extra = f" type={c.payload['type']}" if c.path.endswith("/callback") else ""
                if c.ephemeral:
                    extra += " ephemeral"
                if c.payload.get("components"):
                    extra += " +buttons"
                if text is not None:
                    extra += f" content[{len(text)}]={text[:40]!r}"
            if c.files:
                extra += f" files={c.files}"
            out.append(f"+{c.at - t0:5.2f}s {c.method} {c.path}{extra}")
        return out


@contextlib.asynccontextmanager
async def pointed_at(server: FakeDiscord):
    """Point in-process discord.py clients at `server` for the duration (restores the real URLs after)."""
    import discord
    import yarl

    old_base, old_gw = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = server.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(server.gateway_url)
    try:
        yield server
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gw
