"""Strict JSON for link bodies (PROTOCOL.md section 3).

The stdlib parser is lenient where an attacker could exploit it: it keeps the
last of duplicate keys, accepts ``NaN``/``Infinity``, turns ``1e999`` into
``inf``, recurses on nesting, and lets ``"\\ud800"`` through as a lone
surrogate. ``parse_strict`` closes each of these:

- The body must be UTF-8 (Python's strict decoder: no overlong forms, no
  encoded surrogates) without a byte order mark.
- A ``\\uXXXX`` escape that leaves a lone surrogate is refused: such a string
  cannot be written back as UTF-8 and other parsers replace or reject it, so
  two implementations would disagree on what was signed.
- Duplicate keys are refused in every object, compared after unescaping
  (``"a"`` and ``"\\u0061"`` are the same key).
- Depth counts containers: the top-level object is depth 1. It is measured
  by a scan of the brackets outside strings *before* parsing, so a body of
  four million ``[`` costs one linear pass and never reaches the
  interpreter's recursion limit (nor the parser's stack).
- ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow a double
  are refused; so are integer literals longer than 64 characters (nothing in
  the protocol needs them, and converting huge literals is quadratic).
- Anything but whitespace after the value is refused.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_INT_LITERAL_CHARS = 64

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "BadJSON",
    "dumps_canonical",
    "json_depth",
    "parse_strict",
]


class BadJSON(ValueError):
    """The body is not strict JSON; ``reason`` says why, without quoting the body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Every byte except the four brackets, for bytes.translate(None, delete=...).
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON("a number is too large for a double")
    return value


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_LITERAL_CHARS:
        raise BadJSON(f"an integer literal is longer than {MAX_INT_LITERAL_CHARS} characters")
    return int(text)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BadJSON("an object has a duplicate key")
    return obj


def _bracket_depth(text: str) -> int:
    """Deepest container nesting of ``text``, ignoring brackets inside strings.

    Exact for valid JSON; on other text it may be off, and the parser refuses
    that text anyway. Built from str/bytes methods that run in C, because a
    per-character regex costs ~5 ms per MiB.
    """
    if "\\" in text:
        # Backslashes pair up from the left within a run, so removing pairs
        # first leaves exactly the backslashes that escape the next character.
        text = text.replace("\\\\", "").replace('\\"', "")
    outside_strings = "".join(text.split('"')[0::2])
    brackets = outside_strings.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)))


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE_RE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_strict(
    body: bytes | bytearray | memoryview,
    *,
    max_bytes: int = MAX_BODY_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse ``body`` as strict JSON or raise ``BadJSON``; see the module docstring."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"parse_strict takes bytes, not {type(body).__name__}")
    size = body.nbytes if isinstance(body, memoryview) else len(body)
    if size > max_bytes:
        raise BadJSON(f"the body is {size} bytes, more than the limit of {max_bytes}")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJSON(f"the body is not valid UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise BadJSON("the body starts with a byte order mark")
    # The depth scan can only be fooled by text that is not JSON at all, which
    # the parser below refuses anyway.
    if _bracket_depth(text) > max_depth:
        raise BadJSON(f"the body nests deeper than {max_depth} levels")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        raise BadJSON(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        # Unreachable after the depth scan; kept so that no input escapes as
        # anything but BadJSON.
        raise BadJSON(f"the body nests deeper than {max_depth} levels") from None
    except BadJSON:
        raise
    except ValueError as exc:
        raise BadJSON(f"not valid JSON: {type(exc).__name__}") from None
    if "\\u" in text and _SURROGATE_ESCAPE_RE.search(text) and _has_lone_surrogate(value):
        raise BadJSON("a string holds an unpaired UTF-16 surrogate escape")
    return value


def json_depth(value: Any) -> int:
    """Container depth of an in-memory JSON value, iteratively (top container = 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def dumps_canonical(obj: Any) -> bytes:
    """Compact UTF-8 JSON as Flowlink sends it.

    Keys keep their insertion order: signatures cover the exact bytes, so no
    key sorting is needed for them to verify. ``NaN``/``Infinity`` and strings
    with lone surrogates raise ``ValueError`` instead of producing a body the
    peer would refuse.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")
