"""The declarative cleaning steps of corpus recipes (generator/corpora/cleaning.py): each step on a small text, their
fixed order, and one clear error for a bad `[clean]` table."""

from __future__ import annotations

import pytest

from generator.corpora.cleaning import check_clean, clean_text


def clean(text: str, **spec) -> str:
    return clean_text(text, check_clean(spec))


def test_no_steps_leaves_the_text_as_it_is():
    text = "  Indented.  \n\n\n\n\nEnd without newline"
    assert clean(text) == text
    assert clean(text, encoding="utf-8") == text


def test_remove_drop_lines_and_prefix():
    text = "SITE.COM\n第一回 Heading\n  正文 第二回 Heading\nbody SITE.COM text\nad: buy now\n"
    assert clean(text, remove=r"SITE\.COM") == "\n第一回 Heading\n  正文 第二回 Heading\nbody  text\nad: buy now\n"
    assert clean(text, drop_lines=[r"^ad:", r"^SITE"]) == "第一回 Heading\n  正文 第二回 Heading\nbody SITE.COM text\n"
    # a prefix is matched after the lines are stripped, and only at the start
    assert clean(text, strip_lines="both", strip_prefix="正文 ").splitlines()[2] == "第二回 Heading"
    assert clean("x 正文 y\n", strip_prefix="正文 ") == "x 正文 y\n"


def test_strip_sides_and_characters():
    text = "\u3000\u3000两个空格 \u3000\n  two  \t\n"
    assert clean(text, strip_lines="right") == "\u3000\u3000两个空格\n  two\n"  # any whitespace by default
    assert clean(text, strip_lines="left") == "两个空格 \u3000\ntwo  \t\n"
    assert clean(text, strip_chars=" \u3000") == "两个空格\ntwo  \t\n"  # strip_chars alone strips both sides


def test_split_lines_makes_line_breaks_and_strips_the_pieces():
    text = "\u3000\u3000青山依旧在。\u3000\u3000白发渔樵。 \u3000\u3000\u3000末\n单\u3000空格\n"
    got = clean(text, strip_chars=" \u3000", split_lines="\u3000{2,}")
    assert got == "青山依旧在。\n白发渔樵。\n末\n单\u3000空格\n"


def test_collapse_blank_lines():
    text = "\n\n\nA\n\n\n\n\n\nB\n\nC\n\n\n"
    assert clean(text, collapse_blank_lines=1) == "A\n\nB\n\nC\n"
    assert clean(text, collapse_blank_lines=3) == "A\n\n\n\nB\n\nC\n"
    assert clean(text, collapse_blank_lines=0) == "A\nB\nC\n"
    assert clean("A", collapse_blank_lines=2) == "A\n"  # one final newline


def test_steps_run_in_their_fixed_order():
    # drop before strip (the pattern sees the indentation), prefix after strip, collapse after drop
    text = "  AD line\nbody\n\n\n  AD again\n\n\n  《》目录 第一回\n"
    spec = {"collapse_blank_lines": 1, "strip_prefix": ["《》目录 "], "strip_lines": "both", "drop_lines": [r"^  AD"]}
    assert clean(text, **spec) == "body\n\n第一回\n"


def test_gutenberg_stripping_with_the_other_steps():
    text = (
        "The Project Gutenberg EBook of X\n\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\n\nProduced by Someone\n\n\n\n\n\n"
        "X   \n\n\n\n\n\nThe end.\n\n\nEnd of the Project Gutenberg EBook of X\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nLicence\n"
    )
    assert clean(text, strip_gutenberg=True, strip_lines="right", collapse_blank_lines=3) == "X\n\n\n\nThe end.\n"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"strip": True}, "unknown key"),
        ({"drop_lines": ["(unclosed"]}, "drop_lines: bad regex"),
        ({"remove": [1]}, "remove must be a regex or a list of regexes"),
        ({"strip_lines": "middle"}, "strip_lines must be one of both, right, left"),
        ({"strip_chars": ""}, "strip_chars must be a non-empty string"),
        ({"split_lines": "\u3000*"}, "split_lines must not match an empty string"),
        ({"collapse_blank_lines": -1}, "collapse_blank_lines must be a whole number"),
        ({"collapse_blank_lines": True}, "collapse_blank_lines must be a whole number"),
        ({"strip_gutenberg": "yes"}, "strip_gutenberg must be true or false"),
    ],
)
def test_bad_clean_tables(spec, message):
    with pytest.raises(ValueError, match=message):
        check_clean(spec)
