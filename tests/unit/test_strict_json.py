"""Strict JSON of link bodies (PROTOCOL.md section 3): every lenience of json.loads closed."""

from __future__ import annotations

import json
import time

import pytest

from flowlink.link.strict_json import (
    MAX_BODY_BYTES,
    MAX_DEPTH,
    BadJSON,
    dumps_canonical,
    json_depth,
    parse_strict,
)


def nested(depth: int, opener: str = "[", closer: str = "]", inner: str = "") -> bytes:
    return (opener * depth + inner + closer * depth).encode()


def nested_objects(depth: int) -> bytes:
    return ('{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)).encode()


# --- accepted ----------------------------------------------------------------------------


def test_parses_a_plain_object() -> None:
    body = b'{"a": [1, 2.5, "x", true, false, null], "b": {"c": -0}}'
    assert parse_strict(body) == {"a": [1, 2.5, "x", True, False, None], "b": {"c": 0}}


def test_accepts_bytearray_and_memoryview() -> None:
    assert parse_strict(bytearray(b'{"a":1}')) == {"a": 1}
    assert parse_strict(memoryview(b'{"a":1}')) == {"a": 1}


def test_refuses_text_instead_of_bytes() -> None:
    with pytest.raises(TypeError):
        parse_strict('{"a":1}')  # type: ignore[arg-type]


def test_accepts_surrounding_whitespace() -> None:
    assert parse_strict(b' \n\t{"a":1}\r\n ') == {"a": 1}


def test_accepts_non_ascii_utf8_and_a_valid_surrogate_pair_escape() -> None:
    assert parse_strict('{"k":"é😀"}'.encode()) == {"k": "é😀"}
    assert parse_strict(b'{"k":"\\ud83d\\ude00"}') == {"k": "😀"}


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    inner = '"' + "[{" * 200 + '\\"[[[' + '"'
    body = ('{"a":' + inner + "}").encode()
    assert parse_strict(body) == {"a": "[{" * 200 + '"[[['}


# --- size ---------------------------------------------------------------------------------


def test_size_limit_is_inclusive() -> None:
    body = b'{"a":"' + b"x" * 100 + b'"}'
    assert parse_strict(body, max_bytes=len(body)) == {"a": "x" * 100}
    with pytest.raises(BadJSON, match="more than the limit"):
        parse_strict(body, max_bytes=len(body) - 1)


def test_default_size_limit_is_4_mib() -> None:
    assert MAX_BODY_BYTES == 4 * 1024 * 1024
    filler = b" " * (MAX_BODY_BYTES - 2)
    assert parse_strict(b"{}" + filler) == {}
    with pytest.raises(BadJSON):
        parse_strict(b"{}" + filler + b" ")


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"\xff"}',  # never valid in UTF-8
        b'{"a":"\xc3"}',  # truncated sequence
        b'{"a":"\xc0\xaf"}',  # overlong "/"
        b'{"a":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate D800
        b'{"a":"\xf4\x90\x80\x80"}',  # beyond U+10FFFF
        b'{"a":1}\x80',
        '{"a":"x"}'.encode("utf-16"),
        '{"a":"é"}'.encode("latin-1"),
    ],
)
def test_refuses_non_utf8(body: bytes) -> None:
    with pytest.raises(BadJSON):
        parse_strict(body)


def test_refuses_byte_order_mark() -> None:
    with pytest.raises(BadJSON, match="byte order mark"):
        parse_strict(b'\xef\xbb\xbf{"a":1}')


@pytest.mark.parametrize(
    "escape",
    ["\\ud800", "\\uDBFF", "\\udc00", "\\uDFFF", "\\ude00\\ud83d", "\\ud83dx", "\\ud83d\\u0041"],
)
@pytest.mark.parametrize("where", ["value", "key", "array", "top"])
def test_refuses_lone_surrogate_escapes(escape: str, where: str) -> None:
    text = {
        "value": '{"a":"%s"}',
        "key": '{"%s":1}',
        "array": '{"a":[1,["%s"]]}',
        "top": '"%s"',
    }[where] % escape
    with pytest.raises(BadJSON, match="surrogate"):
        parse_strict(text.encode())


def test_refuses_raw_control_characters_in_strings() -> None:
    with pytest.raises(BadJSON):
        parse_strict(b'{"a":"x\ny"}')
    assert parse_strict(b'{"a":"x\\ny\\u0000"}') == {"a": "x\ny\x00"}


# --- duplicate keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":1}',
        b'{"a":1,"b":2,"a":3}',
        b'{"x":{"a":1,"a":2}}',
        b'{"x":[{"ok":1},{"a":1,"a":2}]}',
        b'[{"a":1,"a":2}]',
        b'{"a":1,"\\u0061":2}',
        b'{"a":{"b":{"c":{"d":{"e":1,"e":1}}}}}',
    ],
)
def test_refuses_duplicate_keys_at_any_level(body: bytes) -> None:
    with pytest.raises(BadJSON, match="duplicate key"):
        parse_strict(body)


def test_same_key_in_sibling_objects_is_fine() -> None:
    assert parse_strict(b'[{"a":1},{"a":2}]') == [{"a": 1}, {"a": 2}]


# --- depth --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [nested, nested_objects])
def test_depth_32_passes_and_33_fails(make) -> None:  # noqa: ANN001
    assert json_depth(parse_strict(make(MAX_DEPTH))) == MAX_DEPTH
    with pytest.raises(BadJSON, match="deeper than 32"):
        parse_strict(make(MAX_DEPTH + 1))


def test_mixed_nesting_counts_both_brackets() -> None:
    ok = ('[{"a":' * 16 + "1" + "}]" * 16).encode()
    too_deep = ('[{"a":' * 16 + "[]" + "}]" * 16).encode()
    assert json_depth(parse_strict(ok)) == 32
    with pytest.raises(BadJSON, match="deeper"):
        parse_strict(too_deep)


@pytest.mark.parametrize(
    "text",
    [
        "\\",
        "\\\\",
        "\\\\\\",
        '"',
        '\\"',
        '"[[[[',
        "]]]]]]",
        '\\"]]]]}}}}"',
        "\\u005b[",
        "x\\",
    ],
)
def test_depth_scan_handles_escapes_exactly(text: str) -> None:
    # A string full of backslashes, quotes and brackets next to real nesting of 32:
    # any slip in telling string from structure shifts the count and flips a result.
    for depth in (MAX_DEPTH, MAX_DEPTH + 1):
        value: object = [text, text]
        for _ in range(depth - 1):
            value = [text, value, {"k" + text: text}]
        body = json.dumps(value, ensure_ascii=False).encode()
        assert json_depth(json.loads(body)) == depth
        if depth <= MAX_DEPTH:
            assert parse_strict(body) == value
        else:
            with pytest.raises(BadJSON, match="deeper"):
                parse_strict(body)


def test_depth_limit_is_configurable() -> None:
    assert parse_strict(b"[[1]]", max_depth=2) == [[1]]
    with pytest.raises(BadJSON):
        parse_strict(b"[[[1]]]", max_depth=2)


def test_wide_shallow_bodies_pass() -> None:
    body = ("[" + ",".join(["[1]"] * 50_000) + "]").encode()
    assert len(parse_strict(body)) == 50_000


def test_hostile_depth_fails_fast_without_recursion_error() -> None:
    body = b"[" * (MAX_BODY_BYTES - 1)
    started = time.perf_counter()
    with pytest.raises(BadJSON, match="deeper"):
        parse_strict(body)
    # Generous bound: the scan is linear; a recursive parse would blow up instead.
    assert time.perf_counter() - started < 5.0


def test_unbalanced_or_unterminated_input_is_badjson_not_recursion() -> None:
    for body in (b'"' + b"[" * 100_000, b"[" * 100_000 + b'"', b"]" * 100 + b"[" * 100_000):
        with pytest.raises(BadJSON):
            parse_strict(body, max_depth=10**6)


# --- numbers and constants ----------------------------------------------------------------


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400", b"1E+309"]
)
def test_refuses_non_finite_numbers(literal: bytes) -> None:
    with pytest.raises(BadJSON):
        parse_strict(b'{"a":' + literal + b"}")


def test_integer_literal_length_is_bounded() -> None:
    assert parse_strict(b"[" + b"9" * 64 + b"]") == [int("9" * 64)]
    with pytest.raises(BadJSON, match="longer than 64"):
        parse_strict(b"[" + b"9" * 65 + b"]")
    with pytest.raises(BadJSON):
        parse_strict(b"[" + b"9" * 100_000 + b"]")


def test_long_float_literal_is_fine() -> None:
    assert parse_strict(b"[0." + b"1" * 1000 + b"]") == [float("0." + "1" * 1000)]


@pytest.mark.parametrize("literal", [b"01", b"+1", b".5", b"1.", b"0x10", b"1_000"])
def test_refuses_non_json_number_syntax(literal: bytes) -> None:
    with pytest.raises(BadJSON):
        parse_strict(b"[" + literal + b"]")


# --- syntax -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b'{"a":1} x',
        b'{"a":1}{}',
        b'{"a":1},',
        b'{"a":1}\x00',
        b"{'a':1}",
        b'{"a":1,}',
        b"[1,]",
        b'{"a" 1}',
        b"{a:1}",
        b'{"a":1',
        b"/* c */{}",
        b'{"a":undefined}',
        b'{"a":True}',
    ],
)
def test_refuses_malformed_json(body: bytes) -> None:
    with pytest.raises(BadJSON):
        parse_strict(body)


def test_reason_does_not_quote_the_body() -> None:
    secret = "hunter2-very-secret"
    with pytest.raises(BadJSON) as info:
        parse_strict(('{"a":"' + secret + '"} trailing').encode())
    assert secret not in info.value.reason
    assert info.value.reason == str(info.value)


# --- dumps_canonical ----------------------------------------------------------------------


def test_dumps_canonical_is_compact_utf8_in_insertion_order() -> None:
    obj = {"z": 1, "a": ["é", {"k": None}], "m": True}
    body = dumps_canonical(obj)
    assert body == '{"z":1,"a":["é",{"k":null}],"m":true}'.encode()
    assert parse_strict(body) == obj


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "\ud800", {1, 2}])
def test_dumps_canonical_refuses_what_a_peer_would_refuse(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        dumps_canonical({"a": bad})


def test_json_depth() -> None:
    assert json_depth(1) == 0
    assert json_depth({}) == 1
    assert json_depth({"a": [1, {"b": []}]}) == 4
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert json_depth(deep) == 5001  # iterative: no RecursionError


def test_parse_matches_stdlib_on_valid_documents() -> None:
    doc = {"a": [1, -2, 3.25, "s\u00e9", None, True], "b": {"c": {"d": []}}, "e": ""}
    body = json.dumps(doc).encode()
    assert parse_strict(body) == json.loads(body)
