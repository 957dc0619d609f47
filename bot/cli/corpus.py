"""`ghostwrite corpus ...`: add, get, list, show and rm corpora through the service (a typer sub-app,
mounted by bot.cli)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from bot.cli.common import sub_app
from bot.service import ContinuationService, GhostwriteError

app = sub_app(help="Manage text corpora: add local files, fetch named ones, list and inspect them.")
SOURCE_NOTE = "source OWNER/REPO@COMMIT: a raw file of that GitHub repository at that commit (URLs: --json)"


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


def _summary(info: Any) -> dict[str, Any]:
    return {**info.to_dict(), "path": str(info.path)}


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Name for the corpus (letters, digits, . _ -).")],
    paths: Annotated[list[str], typer.Argument(help="Text files, folders (their .txt/.md files) or globs.")],
    author: Annotated[str | None, typer.Option("--author", help="Who wrote it.")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="Language code (en, zh, ...); guessed if left out.")] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="Text encoding when not UTF-8 (e.g. gb18030, latin-1).")
    ] = None,
    strip_gutenberg: Annotated[
        bool, typer.Option("--strip-gutenberg", help="Remove Project Gutenberg headers and licence.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing corpus of that name.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the corpus metadata as JSON.")] = False,
) -> None:
    """Register local text files as a corpus."""
    info = ContinuationService().add_corpus(
        name, paths, author=author, lang=lang, encoding=encoding, strip_gutenberg=strip_gutenberg, replace=force
    )
    if as_json:
        typer.echo(json.dumps(_summary(info), ensure_ascii=False, indent=2))
    else:
        _console().print(
            f"added corpus [bold]{info.name}[/]: {_human(info.size_bytes)}, {info.characters:,} characters "
            f"({info.distinct_characters:,} distinct) from {len(info.files)} file(s)"
        )


def _short_source(r: Any) -> str:
    """Where a recipe's text comes from, in a few words: `OWNER/REPO@COMMIT` for raw GitHub files."""
    if r.type != "url":
        return r.label
    places: list[str] = []
    for url in r.urls:
        parts = urllib.parse.urlsplit(url)
        bits = parts.path.strip("/").split("/", 3)
        github = parts.hostname == "raw.githubusercontent.com" and len(bits) == 4
        place = f"{bits[0]}/{bits[1]}@{bits[2][:7]}" if github else str(parts.hostname)
        places += [place] if place not in places else []
    return ", ".join(places) + (f" ({len(r.urls)} files)" if len(r.urls) > 1 else "")


def _recipe_row(r: Any) -> dict[str, Any]:
    return {"name": r.name, "author": r.author, "lang": r.lang, "size": r.size, "source": r.label,
            "urls": r.urls, "description": r.description}  # fmt: skip


def _recipes_table(items: list[Any], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("name", "author", "lang", "size", "source"):
        table.add_column(col, justify="right" if col == "size" else "left", no_wrap=col in ("name", "size"), overflow="fold")
    for r in items:
        table.add_row(r.name, r.author or "", r.lang or "", _human(r.size) if r.size else "?", _short_source(r))
    return table


def _show_recipes(as_json: bool) -> None:
    items = ContinuationService().recipes()
    if as_json:
        typer.echo(json.dumps([_recipe_row(r) for r in items], ensure_ascii=False, indent=2))
    elif not items:
        _console().print("no recipes")
    else:
        console = _console()
        console.print(_recipes_table(items, "recipes: `ghostwrite corpus get NAME` fetches one"))
        console.print(SOURCE_NOTE)


@app.command("get")
def get(
    name: Annotated[str | None, typer.Argument(help="A recipe name (see `corpus get --list`).", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", "-l", help="Show the recipes that can be fetched, and stop.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Fetch again even if it is already there.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the corpus metadata (or the recipes) as JSON.")] = False,
) -> None:
    """Fetch a named corpus from its recipe (corpora/NAME.toml), verify it and register it."""
    if list_:
        _show_recipes(as_json)
        return
    if name is None:
        raise GhostwriteError("name a recipe to fetch (`ghostwrite corpus get --list` shows them)")
    console = _console()
    log = None if as_json else (lambda msg: console.print(msg))
    info = ContinuationService().get_recipe(name, force=force, log=log)
    if as_json:
        typer.echo(json.dumps(_summary(info), ensure_ascii=False, indent=2))


@app.command("recipes")
def recipes_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The corpora `corpus get NAME` can fetch: name, author, language, size and source."""
    _show_recipes(as_json)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Registered corpora, and the recipes that can be fetched with `corpus get`."""
    infos = ContinuationService().corpora()
    have = {i.name for i in infos}
    available = [r for r in ContinuationService().recipes() if r.name not in have]
    if as_json:
        out = {"corpora": [_summary(i) for i in infos], "recipes": [_recipe_row(r) for r in available]}
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    console = _console()
    if infos:
        table = Table(title="corpora", title_justify="left")
        for col in ("name", "author", "lang", "size", "characters", "source"):
            table.add_column(col, justify="right" if col in ("size", "characters") else "left")
        for i in infos:
            table.add_row(i.name, i.author or "", i.lang or "", _human(i.size_bytes), f"{i.characters:,}", i.source)
        console.print(table)
    else:
        console.print("no corpora yet: `ghostwrite corpus add NAME FILE...` or `ghostwrite corpus get NAME`")
    if available:
        console.print(_recipes_table(available, "available with `ghostwrite corpus get NAME`"))
        console.print(SOURCE_NOTE)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Corpus name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Size, characters, distinct characters, language and source of a corpus."""
    info = ContinuationService().corpus_info(name)
    if as_json:
        typer.echo(json.dumps(_summary(info), ensure_ascii=False, indent=2))
        return
    rows = [
        ("name", info.name),
        ("author", info.author or "-"),
        ("language", info.lang or "-"),
        ("source", info.source or "-"),
        ("size", f"{_human(info.size_bytes)} ({info.size_bytes:,} bytes)"),
        ("characters", f"{info.characters:,}"),
        ("distinct characters", f"{info.distinct_characters:,}"),
        ("files", str(len(info.files))),
        ("sha256", info.sha256),
        ("created", info.created),
        ("path", str(info.text_path)),
    ]
    console = _console()
    for k, v in rows:
        console.print(f"[bold]{k:<20}[/] {v}", markup=True)


@app.command("rm")
def rm(name: Annotated[str, typer.Argument(help="Corpus name.")]) -> None:
    """Remove a registered corpus (its recipe, if any, stays)."""
    ContinuationService().remove_corpus(name)
    _console().print(f"removed corpus {name}")
