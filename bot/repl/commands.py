"""The REPL's slash commands. Each handler takes the session and the rest of the line; a bad value or
a wrong use raises GhostwriteError, shown as one hint line. Commands may be shortened to any unique
prefix (/he → /help)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from rich.table import Table
from rich.text import Text

from bot.repl.session import MODEL_STYLE, MODES, NOTE_STYLE, USER_STYLE, ReplSession
from bot.service import SETTINGS, GhostwriteError, atomic_write_text, lookup_setting, settings_line


@dataclass
class Command:
    name: str
    fn: Callable[[ReplSession, str], None]
    usage: str
    help: str
    aliases: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, help: str, aliases: tuple[str, ...] = ()):
    def deco(fn):
        COMMANDS[name] = Command(name, fn, usage, help, aliases)
        return fn

    return deco


def lookup(word: str) -> Command:
    word = word.lower()
    for cmd in COMMANDS.values():
        if word == cmd.name or word in cmd.aliases:
            return cmd
    matches = [c for c in COMMANDS.values() if c.name.startswith(word)] if word else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join("/" + c.name for c in matches)
        raise GhostwriteError(f"/{word} could be {names}")
    raise GhostwriteError(f"unknown command /{word}: /help lists the commands (start with // to write a slash)")


def handle(session: ReplSession, line: str) -> None:
    """One line (or multi-line block) of input. Lines starting with / are commands; // starts text
    with a literal slash. (The session knows nothing of commands: the input loop routes through here.)"""
    if line.startswith("/") and not line.startswith("//"):
        dispatch(session, line)
        return
    if line.startswith("//"):
        line = line[1:]
    if not line.strip():
        if not session.interactive and session.story:
            session.continue_story()
        return
    session.write(line)


def dispatch(session: ReplSession, line: str) -> None:
    word, _, rest = line[1:].strip().partition(" ")
    try:
        cmd = lookup(word.strip())
        cmd.fn(session, rest.strip())
    except GhostwriteError as e:
        session.hint(str(e))


def usage(cmd: str) -> GhostwriteError:
    return GhostwriteError(f"usage: {COMMANDS[cmd].usage}")


# ---- the story --------------------------------------------------------------------------------------
@command("story", "/story", "show the story so far (your words in bold, the model's in colour)")
def story_cmd(s: ReplSession, arg: str) -> None:
    if not s.story:
        s.note("(the story is empty: type something to begin)")
        return
    text = Text()
    for turn in s.story.turns:
        text.append(turn.user, style=USER_STYLE)
        text.append(turn.model, style=MODEL_STYLE)
    s.say(text)
    n = len(s.story.turns)
    s.note(f"  {len(s.story):,} chars, {n} turn{'s' if n != 1 else ''}")


@command("save", "/save FILE[.txt|.md]", "write the story to a file (.md puts your words in bold)")
def save_cmd(s: ReplSession, arg: str) -> None:
    name = arg.strip().strip("'\"")
    if not name:
        raise usage("save")
    if not s.story:
        raise GhostwriteError("nothing to save yet: the story is empty")
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        raise GhostwriteError(f"{path} is a folder: give a file name")
    suffix = path.suffix.lower()
    if not suffix:
        path, suffix = path.with_name(path.name + ".txt"), ".txt"
    if suffix not in (".txt", ".md", ".markdown"):
        raise GhostwriteError(f"save as .txt or .md, not {suffix}")
    if suffix == ".txt":
        content = s.story.to_text()
    else:
        model = f"{s.served[0]}@v{s.served[1]}" if s.served else s.label
        content = s.story.to_markdown(model, datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    try:
        atomic_write_text(path, content)
    except OSError as e:
        raise GhostwriteError(f"could not write {path}: {e.strerror or e}") from None
    s.say(f"saved {len(s.story):,} chars to {path}")


@command("new", "/new", "start a new story (the old one stays in /history)")
def new_cmd(s: ReplSession, arg: str) -> None:
    had = len(s.story)
    s.story.clear()
    s.say("new story" + (f" (the last one, {had:,} chars, is in /history)" if had else ""))


@command("continue", "/continue", "have the model go on without new text from you", aliases=("c",))
def continue_cmd(s: ReplSession, arg: str) -> None:
    s.continue_story()


@command("retry", "/retry", "throw away the last continuation and write it again", aliases=("r",))
def retry_cmd(s: ReplSession, arg: str) -> None:
    s.retry()


@command("undo", "/undo", "take back the last turn (your text and the model's)")
def undo_cmd(s: ReplSession, arg: str) -> None:
    turn = s.story.undo()
    if turn is None:
        raise GhostwriteError("nothing to undo: the story is empty")
    s.note(f"(took back {len(turn.text):,} chars; the story has {len(s.story):,})")


@command("mode", "/mode story|single",
         "story: each prompt adds to the story (default); single: each prompt stands alone")
def mode_cmd(s: ReplSession, arg: str) -> None:
    if not arg:
        s.say(f"mode: {s.mode}")
        return
    if arg.lower() not in MODES:
        raise GhostwriteError(f"mode must be story or single, got {arg!r}")
    s.mode = arg.lower()
    s.say(f"mode: {s.mode}")


# ---- the model and its settings ---------------------------------------------------------------------
@command("model", "/model NAME[@vN]", "switch model (NAME takes its newest version; @vN pins one)")
def model_cmd(s: ReplSession, arg: str) -> None:
    if not arg:
        name, version = s.resolve()
        s.say(f"model: {name}@v{version}" + ("" if s.model_spec and "@" in s.model_spec else " (newest)"))
        return
    name, version = s.svc.resolve(arg)
    s.model_spec = arg if "@" in arg else name
    s.say(f"model: {name}@v{version}" + ("" if "@" in arg else " (newest version, updated as new ones land)"))


@command("models", "/models", "list the trained models")
def models_cmd(s: ReplSession, arg: str) -> None:
    cards = s.svc.models()
    if not cards:
        raise GhostwriteError("no models yet: train one with `ghostwrite train CORPUS`")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("model", "tokenizer", "params", "val bpc", "corpus", "created"):
        table.add_column(col)
    current = s.served[0] if s.served else (s.model_spec or "").split("@")[0]
    for c in cards:
        name = f"{c.get('name')}@v{c.get('version')}"
        bpc = c.get("val_bpc")
        table.add_row(Text(name, style=MODEL_STYLE if c.get("name") == current else None),
                      str((c.get("tokenizer") or {}).get("kind", "?")), f"{c.get('parameters', 0):,}",
                      f"{bpc:.3f}" if isinstance(bpc, (int, float)) else "-", str(c.get("corpus") or "-"),
                      str(c.get("created") or "-")[:16].replace("T", " "))
    s.say(table)


# every spelling /set takes (temperature, temp, t, top-k, k, penalty, rep, ...), from the settings contract
SET_KEYS = {word: st.name for st in SETTINGS for word in st.spellings}
SHOWN_KEYS = "|".join(st.shown_name for st in SETTINGS)
_NONE_WORDS = ("none", "random", "off", "-")  # an optional setting's None (seed: a random one)
_DEFAULT_WORDS = ("default", "unset", "reset")  # back to the model's default (its card's, else the contract's)


def _choice(name: str, word: str) -> str:
    """A choice as written (`sentence`, `Words`, `character`) made the contract's (`sentences`)."""
    w = word.lower()
    for c in SETTINGS_BY_NAME[name].choices:
        if w in (c, c.rstrip("s")) or (c == "chars" and w in ("character", "characters")):
            return c
    return w  # SamplingSettings says what is allowed


SETTINGS_BY_NAME = {st.name: st for st in SETTINGS}


@command("set", f"/set {SHOWN_KEYS} VALUE", "change a sampling setting (/set alone shows them)")
def set_cmd(s: ReplSession, arg: str) -> None:
    words = arg.split()
    if words and words[0].lower() == "parameter":  # ollama's spelling: /set parameter temperature 0.7
        words = words[1:]
    if not words:
        show_settings(s)
        return
    setting = lookup_setting(words[0])
    if setting is None:
        raise GhostwriteError(f"unknown setting {words[0]!r}: use {SHOWN_KEYS}")
    key = setting.name
    if len(words) < 2:
        raise GhostwriteError(f"usage: /set {words[0]} VALUE")
    value: object = words[1]
    new = dict(s.settings)
    if len(words) == 2 and words[1].lower() in _DEFAULT_WORDS:
        new.pop(key, None)
        s.set_settings(new)
        s.note("(" + settings_line(s.effective_settings()) + ")")
        return
    if setting.type is str and not setting.choices:  # a text (stop, ban, bias: `a | b`), spaces included
        text = arg.split(None, 2 if words[0].lower() == "parameter" else 1)[-1]
        value = [] if setting.many and text.lower() in _NONE_WORDS else text
        words = words[:2]
    if setting.optional and words[1].lower() in _NONE_WORDS:
        value = None
    elif setting.choices:
        value = _choice(key, words[1])
    if setting.per_unit is not None and len(words) == 3:  # /set length 3 sentences: its cap is per unit
        new["unit"] = _choice("unit", words[2])
    elif len(words) > 2:
        raise GhostwriteError(f"usage: /set {words[0]} VALUE (one value)")
    new[key] = value
    try:
        s.set_settings(new)
    except GhostwriteError as e:
        msg = str(e)
        capped = [o for o in SETTINGS if o.per_unit is not None and msg.startswith(o.name)]
        if setting.choices and capped:  # the unit is fine, the length is not in it
            o, u = capped[0], str(value)
            msg = (f"{new.get(o.name, o.default)} is too long in {u} (at most {o.cap(u):,}): "
                   f"set both, e.g. /set {o.shown_name} 3 {u}")
        raise GhostwriteError(msg) from None
    s.note("(" + settings_line(s.effective_settings()) + ")")


def show_settings(s: ReplSession) -> None:
    """The settings a generation uses, and which of them come from the model rather than /set."""
    card = {k: v for k, v in s.card_defaults().items() if k not in s.settings}
    s.say(settings_line({**card, **s.settings}))
    if card:
        s.note("(the model's defaults: " + ", ".join(card) + "; /set NAME VALUE overrides one, "
               "/set NAME default goes back to it)")


@command("show", "/show", "the settings, the mode and the model card")
def show_cmd(s: ReplSession, arg: str) -> None:
    show_settings(s)
    s.say(f"mode {s.mode} · story {len(s.story):,} chars (the model sees all of it, up to "
          f"{s.svc.max_story_chars:,})")
    card = s.svc.card(s.model_spec)
    m = card.get("model") or {}
    tok = card.get("tokenizer") or {}
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("model", f"{card.get('name')}@v{card.get('version')}" + ("" if s.model_spec and "@" in s.model_spec
                                                                  else " (newest)")),
        ("corpus", f"{card.get('corpus')}" + (f" by {card['author']}" if card.get("author") else "")
         + (f" ({card['lang']})" if card.get("lang") else "")),
        ("tokenizer", f"{tok.get('kind', '?')}, {tok.get('vocab_size', '?')} symbols"),
        ("network", f"LSTM {m.get('num_layers', '?')}×{m.get('hidden_size', '?')}, "
                    f"{card.get('parameters', 0):,} parameters"),
        ("quality", f"{card['val_bpc']:.3f} bits/char on held-out text" if isinstance(card.get("val_bpc"),
                                                                                       (int, float)) else "-"),
        ("training", f"{card.get('steps', '?')} steps, {card.get('training_seconds', '?')} s on "
                     f"{card.get('device', '?')}" + (f", from {card['base_model']}@v{card['base_version']}"
                                                    if card.get("base_model") else "")),
        ("created", str(card.get("created") or "-").replace("T", " ")),
    ]
    for k, v in rows:
        table.add_row(k, v)
    s.say(table)


# ---- the log ----------------------------------------------------------------------------------------
def _snippet(text: str, width: int, tail: bool = False) -> str:
    flat = " ".join((text or "").split())
    if len(flat) <= width:
        return flat
    return "…" + flat[-(width - 1):] if tail else flat[: width - 1] + "…"


@command("history", "/history [N]", "the last N continuations from the REPL (from the store; default 10)")
def history_cmd(s: ReplSession, arg: str) -> None:
    n = 10
    if arg:
        try:
            n = int(arg)
        except ValueError:
            raise usage("history") from None
        if not 1 <= n <= 1000:
            raise GhostwriteError(f"N must be between 1 and 1000, got {n}")
    gens = s.svc.history(source="repl", limit=n)
    if not gens:
        s.note("(nothing stored from the REPL yet)")
        return
    for g in reversed(gens):
        line = Text()
        line.append(f"#{g.id} ", style="cyan")
        line.append(g.created_at.strftime("%m-%d %H:%M") + " ", style=NOTE_STYLE)
        line.append(f"{g.model_spec} ", style=NOTE_STYLE)
        if g.status != "complete":
            line.append(f"[{g.status}] ", style="yellow")
        line.append(_snippet(g.prompt, 30, tail=True), style=USER_STYLE)
        line.append(" → ", style=NOTE_STYLE)
        line.append(_snippet(g.output, 50), style=MODEL_STYLE)
        line.truncate(max(20, s.console.width), overflow="ellipsis")
        s.say(line)


# ---- the session ------------------------------------------------------------------------------------
@command("clear", "/clear", "clear the screen (the story stays)")
def clear_cmd(s: ReplSession, arg: str) -> None:
    if s.interactive:
        s.console.clear()


@command("help", "/help", "this list", aliases=("?", "h"))
def help_cmd(s: ReplSession, arg: str) -> None:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for cmd in COMMANDS.values():
        table.add_row(cmd.usage, cmd.help)
    s.say(table)
    s.say('Type text to add it to the story; the model continues it. Alt+Enter starts a new line, and a '
          '""" block spans lines. Ctrl+C stops the model (the part written stays) or clears the line; '
          "Ctrl+D or /quit leaves. // starts text with a slash. Commands can be shortened (/he).", NOTE_STYLE)


@command("quit", "/quit", "leave (also /exit, /bye, Ctrl+D)", aliases=("exit", "bye", "q"))
def quit_cmd(s: ReplSession, arg: str) -> None:
    s.quit()


# ---- retraining -------------------------------------------------------------------------------------
@command("retrain", "/retrain CORPUS [--fresh] [--max-time S] | status | cancel",
         "train a new version of this model in the background; it serves when done")
def retrain_cmd(s: ReplSession, arg: str) -> None:
    try:
        words = shlex.split(arg)
    except ValueError as e:
        raise GhostwriteError(f"usage: {COMMANDS['retrain'].usage} ({e})") from None
    if not words:
        raise usage("retrain")
    svc = s.svc
    if words == ["status"]:
        st = svc.job_status(s.job_id)  # (None: the newest run)
        if not st:
            s.note("(no training runs yet)")
            return
        p = st.get("progress") or {}
        step = f", step {p['step']}/{p.get('total_steps') or '?'}" if p.get("step") else ""
        bpc = p.get("val_bpc") or st.get("val_bpc")
        s.say(f"training run {st['id']} ({st['model']} on {st.get('corpus') or '?'}): {st['status']}{step}"
              + (f", val {bpc:.3f} bits/char" if isinstance(bpc, (int, float)) else "")
              + (f" → v{st['new_version']}" if st.get("new_version") else "")
              + (f": {st['error']}" if st.get("error") else ""))
        return
    if words == ["cancel"]:
        if svc.cancel_job(s.job_id):
            s.say("training cancelled; the current version keeps serving")
            s.job_id = None
        else:
            s.note("(no training job of this session is running)")
        return
    corpus, fresh, max_time = None, False, None
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--fresh":
            fresh = True
        elif w == "--max-time" or w.startswith("--max-time="):
            raw = w.split("=", 1)[1] if "=" in w else (words[i + 1] if i + 1 < len(words) else "")
            i += 0 if "=" in w else 1
            try:
                max_time = float(raw)
            except ValueError:
                raise GhostwriteError(f"--max-time takes seconds, got {raw!r}") from None
        elif w.startswith("-"):
            raise GhostwriteError(f"unknown option {w}: {COMMANDS['retrain'].usage}")
        elif corpus is None:
            corpus = w
        else:
            raise usage("retrain")
        i += 1
    if corpus is None:
        raise usage("retrain")
    name, version = s.resolve()
    s.job_id = svc.retrain(name, corpus, base="fresh" if fresh else None, max_time=max_time, requested_by="repl")
    how = "from scratch" if fresh else f"from {name}@v{version}"
    s.say(f"training run {s.job_id} started: {name} on {corpus}, {how}. Keep writing; the new version "
          "serves when it is done (/retrain status).")
