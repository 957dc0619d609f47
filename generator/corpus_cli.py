"""`ghostwrite corpus ...`: add, get, list, show and rm corpora (a typer sub-app, mounted by the main CLI)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from generator import corpus as corpus_mod
from generator import recipes
from generator.errors import GhostwriteError

app = typer.Typer(help="Manage text corpora: add local files, fetch named ones, list and inspect them.", no_args_is_help=True)
F = TypeVar("F", bound=Callable[..., Any])


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def user_errors(fn: F) -> F:
    """GhostwriteError → one line on stderr and exit code 2 (the main CLI does the same)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GhostwriteError as e:
            _err(str(e).splitlines()[0] if str(e) else type(e).__name__)
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


def _summary(info: corpus_mod.CorpusInfo) -> dict[str, Any]:
    return {**info.to_dict(), "path": str(info.path)}


@app.command("add")
@user_errors
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
    info = corpus_mod.add_corpus(
        name, paths, author=author, lang=lang, encoding=encoding, strip_gutenberg=strip_gutenberg, replace=force
    )
    if as_json:
        typer.echo(json.dumps(_summary(info), ensure_ascii=False, indent=2))
    else:
        _console().print(
            f"added corpus [bold]{info.name}[/]: {_human(info.size_bytes)}, {info.characters:,} characters "
            f"({info.distinct_characters:,} distinct) from {len(info.files)} file(s)"
        )


@app.command("get")
@user_errors
def get(
    name: Annotated[str, typer.Argument(help="A recipe name (see `corpus list`).")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Fetch again even if it is already there.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the corpus metadata as JSON.")] = False,
) -> None:
    """Fetch a named corpus from its recipe (corpora/NAME.toml), verify it and register it."""
    console = _console()
    log = None if as_json else (lambda msg: console.print(msg))
    info = recipes.get(name, force=force, log=log)
    if as_json:
        typer.echo(json.dumps(_summary(info), ensure_ascii=False, indent=2))


@app.command("list")
@user_errors
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Registered corpora, and the recipes that can be fetched with `corpus get`."""
    infos = corpus_mod.list_corpora()
    have = {i.name for i in infos}
    available = [r for r in recipes.list_recipes() if r.name not in have]
    if as_json:
        out = {
            "corpora": [_summary(i) for i in infos],
            "recipes": [{"name": r.name, "author": r.author, "lang": r.lang, "source": r.label, "description": r.description} for r in available],
        }
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
        table = Table(title="available with `ghostwrite corpus get NAME`", title_justify="left")
        for col in ("name", "author", "lang", "source"):
            table.add_column(col)
        for r in available:
            table.add_row(r.name, r.author or "", r.lang or "", r.label)
        console.print(table)


@app.command("show")
@user_errors
def show(
    name: Annotated[str, typer.Argument(help="Corpus name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Size, characters, distinct characters, language and source of a corpus."""
    info = corpus_mod.corpus_info(name)
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
@user_errors
def rm(name: Annotated[str, typer.Argument(help="Corpus name.")]) -> None:
    """Remove a registered corpus (its recipe, if any, stays)."""
    corpus_mod.remove_corpus(name)
    _console().print(f"removed corpus {name}")
