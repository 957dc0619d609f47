"""`ghostwrite models list|show|rm`: the registered models, through the service."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from bot.cli.common import console, sub_app
from bot.service import ContinuationService

app = sub_app(help="List, inspect and remove trained models.")


@app.command("list")
def models_list(json_out: bool = typer.Option(False, "--json"), all_versions: bool = typer.Option(False, "--all")):
    """Registered models (newest version of each; --all for every version)."""
    cards = ContinuationService().models(all_versions=all_versions)
    if json_out:
        print(json.dumps(cards, ensure_ascii=False))
        return
    if not cards:
        console.print("no models yet: `ghostwrite train CORPUS` makes one")
        return
    t = Table("model", "tokenizer", "size", "params", "val bits/char", "style", "corpus", "created")
    for c in cards:
        m = c["model"]
        t.add_row(f"{c['name']}@v{c['version']}", f"{c['tokenizer']['kind']} ({c['tokenizer']['vocab_size']:,})",
                  f"{m['num_layers']}×{m['hidden_size']}", f"{c['parameters']:,}", f"{c['val_bpc']:.3f}",
                  _style(c.get("style")), c["corpus"], c["created"][:16])
    console.print(t)


def _style(style) -> str:
    """`eval --style`'s figures from a card: attributed to its author (real text), median longest copy."""
    try:
        acc = "–" if style["accuracy"] is None else f"{float(style['accuracy']):.0%}"
        real = "–" if style["ceiling"] is None else f"{float(style['ceiling']):.0%}"
        return f"{acc} ({real}), copies {float(style['longest_copied_median']):g}"
    except (TypeError, KeyError, ValueError):
        return ""


@app.command("show")
def models_show(model: str = typer.Argument(..., help="NAME or NAME@vN")):
    """A model's card as JSON."""
    print(json.dumps(ContinuationService().card(model), indent=2, ensure_ascii=False))


@app.command("rm")
def models_rm(model: str = typer.Argument(..., help="NAME (every version) or NAME@vN"),
              yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")):
    """Remove a model version, or every version of a model."""
    svc = ContinuationService()
    name, version = svc.parse_model(model)
    svc.card(model)  # an unknown model or version: its one-line error, before asking
    what = f"{name}@v{version}" if version else f"every version of {name}"
    if not yes and sys.stdin.isatty() and not typer.confirm(f"remove {what}?"):
        raise typer.Exit(1)
    removed = svc.remove_model(model)
    console.print(f"removed {name} " + ", ".join(f"v{v}" for v in removed))


@app.command("set-avatar")
def models_set_avatar(model: str = typer.Argument(..., help="NAME"),
                      image: str = typer.Argument(..., help="A PNG, JPEG, GIF or WebP file (up to 8 MB)")):
    """The picture a model posts with on Discord when a server turns its author persona on."""
    import os

    from bot.service import GhostwriteError

    path = os.path.expanduser(image)
    try:
        with open(path, "rb") as f:
            data = f.read(8 * 1024 * 1024 + 1)
    except OSError as e:
        raise GhostwriteError(f"cannot read {image}: {e.strerror or e}") from None
    kind = ContinuationService().set_avatar(model, data)
    console.print(f"{model}'s avatar is now {image} ({kind}); Discord personas made from now on use it")
