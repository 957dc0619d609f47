"""`ghostwrite logs`: list, search, show, export, forget and stats over the stored continuations.

A typer sub-app; the main CLI mounts it as `logs`. Humans get rich tables; `--json` gives scripts
JSON. Bad input or a database problem prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.cli.common import sub_app
from bot.service import (
    ContinuationService,
    GhostwriteError,
    atomic_write_text,
    unsurrogate,
)

app = sub_app(
    name="logs",
    help="Browse, search, export and delete the stored continuations.",
    add_completion=False,
)

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SOURCES = ("cli", "repl", "discord", "api", "llm")
MAX_LIMIT = 10**9  # --limit: what SQL LIMIT takes on every backend (10**30 overflowed SQLite's integer)
MAX_ID = 2**63 - 1


def _service() -> ContinuationService:
    """The service, for one command: `with _service() as svc:` (its store is closed at the end)."""
    return ContinuationService()


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """`2h`, `3d`, `45m`, `1w`, `30s` (that long ago) or an ISO date/time (local time unless it
    names a zone) → an aware UTC datetime."""
    if value is None or value == "":
        return None
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", value.lower())
    if match:
        try:  # (a number of 4,300 digits or more is a ValueError)
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except (OverflowError, ValueError):  # longer ago than year 1: everything
            return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise GhostwriteError(
            f"--since {_clip(value)}: use a time like 2h, 3d, 1w or a date like 2024-05-01"
        ) from None
    try:
        return when.astimezone(timezone.utc)  # a naive time is taken as local time
    except (OverflowError, ValueError):  # within hours of year 1 or 9999: past either end in UTC
        return None if when.year < 5000 else datetime.max.replace(tzinfo=timezone.utc)


def _clip(value: str, width: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 4] + "...'"


def _parse_id(value: str) -> int:
    try:
        n = int(value.strip().lstrip("#"))
    except ValueError:
        raise GhostwriteError(
            f"not a generation id: {_clip(value)} (ids are numbers, see `ghostwrite logs list`)"
        ) from None
    if n <= 0:
        raise GhostwriteError(f"not a generation id: {_clip(value)}")
    if n > MAX_ID:  # the database's ids are 64-bit: no row has it
        raise GhostwriteError(f"no generation with id {_clip(value.strip())}")
    return n


def _text(value: str | None) -> str | None:
    """A value to look for in stored text: undecodable bytes (argv's lone surrogates) as the store keeps
    them, U+FFFD (a surrogate cannot even be sent to the database)."""
    return None if value is None else unsurrogate(value)


def _filters(model: str | None, source: str | None, user: str | None, since: str | None) -> dict[str, Any]:
    model, source, user = _text(model), _text(source), _text(user)
    if source is not None and source not in _SOURCES:
        raise GhostwriteError(f"unknown --source {source!r}; use one of {', '.join(_SOURCES)}")
    return {"model": model, "source": source, "user_id": user, "since": parse_since(since)}


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _snippet(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(dt: datetime, short: bool = False) -> str:
    return dt.astimezone().strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def _generations_table(gens: list[Any], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for name, style in (("id", "cyan"), ("time", "dim"), ("source", ""), ("user", ""), ("model", "magenta"),
                        ("status", ""), ("ms", ""), ("prompt → output", "")):  # fmt: skip
        table.add_column(name, style=style or None, justify="right" if name in ("id", "ms") else "left")
    for g in gens:
        text = Text(_snippet(g.prompt, 30), style="bold")
        text.append(" → ")
        text.append(_snippet(g.output, 40), style="green")
        status_style = {"complete": "green", "interrupted": "yellow", "error": "red"}.get(g.status, "")
        table.add_row(
            str(g.id), _when(g.created_at, short=True), g.source, g.user_name or g.user_id or "",
            g.model_spec, Text(g.status, style=status_style),
            "" if g.latency_ms is None else str(g.latency_ms), text,
        )  # fmt: skip
    return table


@app.command("list")
def list_cmd(
    model: str = typer.Option(None, "--model", "-m", help="NAME or NAME@vN"),
    source: str = typer.Option(None, "--source", help="cli, repl or discord"),
    user: str = typer.Option(None, "--user", "-u", help="user id"),
    since: str = typer.Option(None, "--since", help="2h, 3d, 1w or an ISO date"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=MAX_LIMIT, help="at most this many"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """The newest continuations first."""
    filters = _filters(model, source, user, since)
    with _service() as svc:
        gens = svc.history(limit=limit, **filters)
    if as_json:
        _emit_json([g.to_dict() for g in gens])
    elif not gens:
        filtered = any((model, source, user, since))
        typer.echo("nothing matches" if filtered else "no continuations stored yet")
    else:
        Console().print(_generations_table(gens, f"{len(gens)} continuation(s), newest first"))


@app.command("search")
def search_cmd(
    text: str = typer.Argument(..., help="words to find in prompts and outputs"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=MAX_LIMIT),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """Full-text search over prompts and outputs (every word must appear), best match first."""
    text = _text(text)
    with _service() as svc:
        gens = svc.search(text, limit=limit)
    if as_json:
        _emit_json([g.to_dict() for g in gens])
    elif not gens:
        typer.echo(f"nothing found for {text!r}")
    else:
        Console().print(_generations_table(gens, f"{len(gens)} match(es) for {text!r}"))


@app.command("show")
def show_cmd(
    gen_id: str = typer.Argument(..., metavar="ID", help="generation id"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """One continuation in full, after the chain of continuations it extends."""
    n = _parse_id(gen_id)
    with _service() as svc:
        if svc.generation(n) is None:
            raise GhostwriteError(f"no generation with id {n}")
        chain = svc.chain(n)
        feedback = svc.votes(n)
    gen = chain[-1]
    if as_json:
        _emit_json({"generation": gen.to_dict(), "chain": [g.to_dict() for g in chain[:-1]],
                    "feedback": [f.to_dict() for f in feedback]})  # fmt: skip
        return
    console = Console()
    for parent in chain[:-1]:
        line = Text(f"#{parent.id} ", style="cyan")
        line.append(f"{_when(parent.created_at)}  ", style="dim")
        line.append(_snippet(parent.prompt, 40), style="bold")
        line.append(" → ")
        line.append(_snippet(parent.output, 60), style="green")
        console.print(line)
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="dim")
    meta.add_column()
    votes = sum(f.value for f in feedback)
    rows = [
        ("id", f"#{gen.id}" + (f" (continues #{gen.parent_id})" if gen.parent_id else "")),
        ("time", _when(gen.created_at)), ("source", gen.source),
        ("user", " ".join(x for x in (gen.user_name or "", f"({gen.user_id})" if gen.user_id else "") if x)),
        ("where", f"guild {gen.guild_id} channel {gen.channel_id}" if gen.guild_id or gen.channel_id else ""),
        ("model", gen.model_spec), ("status", gen.status),
        ("ended by", gen.finish_reason or ""), ("error", gen.error or ""),
        ("tokens", f"{gen.tokens_in if gen.tokens_in is not None else '?'} in, "
                   f"{gen.tokens_out if gen.tokens_out is not None else '?'} out"),
        ("latency", f"{gen.latency_ms} ms" if gen.latency_ms is not None else ""),
        ("settings", ", ".join(f"{k}={v}" for k, v in sorted(gen.params.items()))),
        ("feedback", f"{votes:+d} from {len(feedback)} vote(s)" if feedback else ""),
        ("message", gen.message_id or ""),
    ]  # fmt: skip
    for key, value in rows:
        if value:
            meta.add_row(key, Text(value))
    console.print(meta)
    console.rule("prompt", style="dim")
    console.print(Text(gen.prompt, style="bold"))
    console.rule("continuation", style="dim")
    console.print(Text(gen.output, style="green"))


@app.command("export")
def export_cmd(
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl or csv"),
    output: Path = typer.Option(None, "--output", "-o", help="file to write ('-' or none: stdout)"),
    model: str = typer.Option(None, "--model", "-m", help="NAME or NAME@vN"),
    source: str = typer.Option(None, "--source", help="cli, repl or discord"),
    user: str = typer.Option(None, "--user", "-u", help="user id"),
    since: str = typer.Option(None, "--since", help="2h, 3d, 1w or an ISO date"),
) -> None:
    """Every matching continuation, oldest first, as JSON lines or CSV."""
    fmt = fmt.lower()
    if fmt not in ("jsonl", "csv"):
        raise GhostwriteError(f"unknown export format {fmt!r}; use jsonl or csv")
    filters = _filters(model, source, user, since)
    with _service() as svc:
        if output is None or str(output) == "-":
            svc.export(fmt, sys.stdout, **filters)
            return
        buffer = io.StringIO(newline="")
        count = svc.export(fmt, buffer, **filters)
    try:  # a regular file is replaced whole; a symlink's target likewise; a device or FIFO is written to
        atomic_write_text(output, buffer.getvalue())
    except OSError as e:
        raise GhostwriteError(f"cannot write {output}: {e.strerror or e}") from None
    typer.echo(f"exported {count} continuation(s) to {output}", err=True)


@app.command("forget")
def forget_cmd(
    user: str = typer.Option(..., "--user", "-u", help="the user id whose data goes"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json", help="JSON for scripts"),
) -> None:
    """Delete everything stored about one user (a privacy request)."""
    user = _text(user)
    with _service() as svc:
        if not yes:
            would = svc.forget(user, dry_run=True)
            summary = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in would.items())
            try:
                sure = typer.confirm(f"Delete all data of user {user} ({summary})?", default=False)
            except typer.Abort:  # end of input
                sure = False
            if not sure:
                typer.echo("nothing deleted", err=True)
                raise typer.Exit(1)
        counts = svc.forget(user)
    if as_json:
        _emit_json({"user_id": user, "deleted": counts})
    else:
        typer.echo(
            f"forgot user {user}: deleted {counts['generations']} continuation(s), "
            f"{counts['feedback']} vote(s), {counts['stories']} story(ies); "
            f"unnamed on {counts['training_runs']} training run(s)"
        )


@app.command("stats")
def stats_cmd(as_json: bool = typer.Option(False, "--json", help="JSON for scripts")) -> None:
    """Counts, statuses, latency percentiles, tokens and feedback by model."""
    with _service() as svc:
        stats = svc.stats()
    if as_json:
        _emit_json(stats)
        return
    if not stats["models"]:
        typer.echo("no continuations stored yet")
        return
    table = Table(title=f"{stats['total']} continuation(s)")
    for name in ("model", "count", "done", "intr", "err", "p50 ms", "p90 ms", "p99 ms", "tokens", "votes"):
        table.add_column(name, justify="left" if name == "model" else "right")

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.0f}"

    for model, row in stats["models"].items():
        lat, by = row["latency_ms"], row["by_status"]
        table.add_row(
            model, str(row["count"]), str(by.get("complete", 0)), str(by.get("interrupted", 0)),
            str(by.get("error", 0)), ms(lat.get("p50")), ms(lat.get("p90")), ms(lat.get("p99")),
            str(row["tokens_out"]), f"{row['feedback']:+d}",
        )  # fmt: skip
    Console().print(table)
