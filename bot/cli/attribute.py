"""`ghostwrite attribute [TEXT|FILE|-] --among a,b,...`: whose is this text? Each candidate corpus's judge
(a character n-gram model of its training split, built once and kept with the corpus) scores it in bits per
character; the cheapest wins. Through the service (bot.service), like every command."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import typer
from rich.table import Table

from bot.cli.common import console, err, fail
from bot.service import ContinuationService, clean_text


def read_text(arg: str) -> str:
    """The argument itself, a file it names, or standard input for '-' (bytes that are not UTF-8 → U+FFFD,
    with a warning, as for a prompt)."""
    if arg == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        raw = stdin.read() if stdin is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    elif "\n" not in arg and os.path.isfile(os.path.expanduser(arg)):
        try:
            with open(os.path.expanduser(arg), "rb") as f:
                raw = f.read()
        except OSError as e:
            fail(f"cannot read {arg}: {e.strerror or e}")
        if b"\x00" in raw:
            fail(f"{arg} is not a text file")
    else:
        return clean_text(arg)[0]
    text, note = clean_text(raw.decode("utf-8-sig", "surrogateescape"))
    if note:
        err.print(f"[yellow]warning:[/] {note.replace('the prompt', 'the text')}", highlight=False, soft_wrap=True)
    return text


def attribute_command(
    text: str = typer.Argument(..., help="The text, a file holding it, or '-' to read standard input."),
    among: Optional[str] = typer.Option(None, "--among", help="Candidate corpora, comma-separated (default: "
                                        "every registered corpus in the text's language)."),
    force: bool = typer.Option(False, "--force", help="Compare corpora of different languages anyway."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Say whose text it most likely is: bits per character under each candidate author's judge."""
    names = None if among is None else [n for n in among.split(",")]
    result = ContinuationService().attribute(read_text(text), names, force=force)
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
        return
    t = Table("corpus", "author", "bits/char", "")
    for i, row in enumerate(result["scores"]):
        t.add_row(row["corpus"], row.get("author") or "", f"{row['bits_per_char']:.4f}",
                  "[green]winner[/]" if i == 0 else f"+{row['bits_per_char'] - result['scores'][0]['bits_per_char']:.4f}")
    console.print(t)
    console.print(f"[bold]{result['winner']}[/] by {result['margin']:.4f} bits/char over "
                  f"{result['scores'][1]['corpus']} ({result['chars']:,} characters)")
