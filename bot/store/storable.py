"""What every database can hold: the store's rule for text, applied to every value it writes.

PostgreSQL refuses NUL in text (and `\\u0000` in JSON) and neither database accepts a lone surrogate
(Python strings may carry one: `surrogateescape` bytes from argv, half an emoji from a broken
source). Rather than store such text on one database and refuse it on the other, the store makes it
storable the same way on both:

- NUL (U+0000) becomes U+FFFD (the replacement character), so the text keeps its length and shows
  where something was;
- a surrogate pair that arrived as two code points is joined into its character, and a lone surrogate
  becomes U+FFFD;
- in JSON columns the same holds for keys and string values, and a non-finite number (NaN, ±inf),
  which JSON cannot hold (PostgreSQL refuses it), becomes null.

The column types below apply the rule when a value is bound, so writes and the values compared in
queries agree; everything else is stored as given.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import JSON, String, Text, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` as every database holds it: NUL and lone surrogates become U+FFFD."""
    if not _UNSTORABLE.search(text):
        return text
    if _SURROGATE.search(text):  # pairs become their character; UTF-16 replaces the lone ones
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", REPLACEMENT)


def storable_json(value: Any) -> Any:
    """A JSON value with `storable` keys and strings and no non-finite numbers (they become None)."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {storable(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(v) for v in value]
    return value


class StorableString(TypeDecorator[str]):
    """VARCHAR(n) whose values pass through `storable`."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return storable(value) if isinstance(value, str) else value


class StorableText(StorableString):
    """TEXT whose values pass through `storable`."""

    impl = Text
    cache_ok = True


class StorableJSON(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose values pass through `storable_json`."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else storable_json(value)
