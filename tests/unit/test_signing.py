"""The Flowlink-Signature header (PROTOCOL.md section 4): detached JWS, PS256, unencoded payload."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from flowlink.link.signing import (
    MAX_HEADER_CHARS,
    BadSignature,
    Signer,
    Verifier,
    b64url_decode,
    b64url_encode,
)
from flowlink.workspace.identity import key_id

BODY = b'{"protocol":"flowlink-sync/1","messages":[],"note":"\xc3\xa9"}'
PSS32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def key_3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture(scope="module")
def verifier(key: rsa.RSAPrivateKey) -> Verifier:
    return Verifier(key.public_key())


# An independent construction of RFC 7797 section 3 / RFC 7515 appendix F: only base64,
# json and cryptography, none of the code under test.


def indep_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def indep_kid(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def hand_jws(
    private_key: rsa.RSAPrivateKey,
    body: bytes,
    header: dict | None = None,
    *,
    header_json: bytes | None = None,
    pad: padding.AsymmetricPadding = PSS32,
    algorithm: hashes.HashAlgorithm | None = None,
) -> str:
    if header_json is None:
        if header is None:
            header = {
                "alg": "PS256",
                "kid": indep_kid(private_key.public_key()),
                "b64": False,
                "crit": ["b64"],
            }
        header_json = json.dumps(header).encode()
    protected = indep_b64(header_json)
    signing_input = protected.encode("ascii") + b"." + body
    signature = private_key.sign(signing_input, pad, algorithm or hashes.SHA256())
    return f"{protected}..{indep_b64(signature)}"


def header_of(value: str) -> dict:
    protected = value.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))


# --- round trips and interoperability -----------------------------------------------------


def test_sign_then_verify(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    value = Signer(key).sign(BODY)
    verifier.verify(value, BODY)


def test_kid_is_identity_key_id(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    assert (
        Signer(key).kid == verifier.kid == key_id(key.public_key()) == indep_kid(key.public_key())
    )


def test_signer_output_matches_rfc7797_shape(key: rsa.RSAPrivateKey) -> None:
    value = Signer(key).sign(BODY)
    protected, payload, signature = value.split(".")
    assert payload == ""
    assert "=" not in value and "+" not in value and "/" not in value
    assert header_of(value) == {
        "alg": "PS256",
        "kid": indep_kid(key.public_key()),
        "b64": False,
        "crit": ["b64"],
    }
    # Verify with the independent construction: PSS, SHA-256, MGF1-SHA-256, salt 32.
    raw_sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    key.public_key().verify(raw_sig, protected.encode() + b"." + BODY, PSS32, hashes.SHA256())


def test_signer_uses_salt_length_32(key: rsa.RSAPrivateKey) -> None:
    value = Signer(key).sign(BODY)
    protected, _, signature = value.split(".")
    raw_sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    other_salt = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20)
    with pytest.raises(InvalidSignature):
        key.public_key().verify(
            raw_sig, protected.encode() + b"." + BODY, other_salt, hashes.SHA256()
        )


def test_hand_built_jws_verifies(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    verifier.verify(hand_jws(key, BODY), BODY)


def test_hand_built_jws_with_other_member_order_and_spacing_verifies(
    key: rsa.RSAPrivateKey, verifier: Verifier
) -> None:
    kid = indep_kid(key.public_key())
    header_json = (
        '{ "crit" : [ "b64" ],\n "b64": false, "kid": "' + kid + '", "alg": "PS256" }'
    ).encode()
    verifier.verify(hand_jws(key, BODY, header_json=header_json), BODY)


def test_3072_bit_keys(key_3072: rsa.RSAPrivateKey) -> None:
    value = Signer(key_3072).sign(BODY)
    Verifier(key_3072.public_key()).verify(value, BODY)
    Verifier(key_3072.public_key()).verify(hand_jws(key_3072, BODY), BODY)
    assert len(b64url_decode(value.split(".")[2])) == 384


def test_empty_and_binary_bodies(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    for body in (b"", bytes(range(256)), b"." * 1000):
        verifier.verify(Signer(key).sign(body), body)
        verifier.verify(hand_jws(key, body), body)


def test_signatures_are_randomised(key: rsa.RSAPrivateKey) -> None:
    signer = Signer(key)
    assert signer.sign(BODY) != signer.sign(BODY)


# --- tampering ----------------------------------------------------------------------------


def test_every_body_byte_flip_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    body = b'{"a":1,"to":"server","messages":[{"seq":1}]}'
    value = Signer(key).sign(body)
    for position in range(len(body)):
        for flip in (0x01, 0x80):
            tampered = bytearray(body)
            tampered[position] ^= flip
            with pytest.raises(BadSignature, match="does not match"):
                verifier.verify(value, bytes(tampered))


def test_truncated_or_extended_body_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    value = Signer(key).sign(BODY)
    for body in (BODY[:-1], BODY[1:], BODY + b" ", b" " + BODY, BODY + b"\x00", b""):
        with pytest.raises(BadSignature):
            verifier.verify(value, body)


def test_every_header_value_character_change_is_rejected(
    key: rsa.RSAPrivateKey, verifier: Verifier
) -> None:
    value = Signer(key).sign(BODY)
    alphabet = string.ascii_letters + string.digits + "-_.=+/ "
    for position in range(len(value)):
        original = value[position]
        # Two replacements per position: the next alphabet letter, and one that differs
        # only in the low bits (the case a lenient base64 decoder would let through).
        candidates = {alphabet[(alphabet.index(original) + 1) % len(alphabet)]}
        if original in string.ascii_letters + string.digits + "-_":
            b64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
            index = b64.index(original)
            candidates.add(b64[index ^ 1])
        for replacement in candidates:
            tampered = value[:position] + replacement + value[position + 1 :]
            with pytest.raises(BadSignature):
                verifier.verify(tampered, BODY)
    for tampered in (value[:-1], value + "A", "A" + value, value[1:], value + "."):
        with pytest.raises(BadSignature):
            verifier.verify(tampered, BODY)


def test_signature_wrong_length_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    protected, _, signature = Signer(key).sign(BODY).split(".")
    raw = b64url_decode(signature)
    for raw_bad in (raw[:-1], raw + b"\x00", b"\x00" + raw, raw * 2, b"\x00"):
        with pytest.raises(BadSignature, match="bytes"):
            verifier.verify(f"{protected}..{b64url_encode(raw_bad)}", BODY)


def test_non_canonical_base64_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    protected, _, signature = Signer(key).sign(BODY).split(".")
    # 256 bytes -> 342 characters with 4 unused bits: set them.
    b64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    noncanonical = signature[:-1] + b64[b64.index(signature[-1]) ^ 0b0001]
    assert base64.urlsafe_b64decode(noncanonical + "==") == base64.urlsafe_b64decode(
        signature + "=="
    )
    with pytest.raises(BadSignature, match="base64url"):
        verifier.verify(f"{protected}..{noncanonical}", BODY)


@pytest.mark.parametrize("mutate", ["pad", "std_alphabet", "space", "newline"])
def test_padding_and_foreign_alphabets_are_rejected(
    key: rsa.RSAPrivateKey, verifier: Verifier, mutate: str
) -> None:
    protected, _, signature = Signer(key).sign(BODY).split(".")
    if mutate == "pad":
        variants = [f"{protected}..{signature}==", f"{protected}=..{signature}"]
    elif mutate == "std_alphabet":
        std = base64.b64encode(b64url_decode(signature)).decode().rstrip("=")
        variants = [f"{protected}..{std}"] if std != signature else []
        variants.append(f"{protected}..{signature[:-2]}+/")
    elif mutate == "space":
        variants = [f" {protected}..{signature}", f"{protected}..{signature} "]
    else:
        variants = [f"{protected}..{signature}\n", f"{protected}..\n{signature}"]
    assert variants
    for variant in variants:
        with pytest.raises(BadSignature):
            verifier.verify(variant, BODY)


def test_b64url_helpers() -> None:
    for data in (b"", b"\x00", b"\xff\xfe", bytes(range(256))):
        assert b64url_decode(b64url_encode(data)) == data
    for text in ("A", "AB=", "A+B/", "AB C", "AB\n", "é"):
        with pytest.raises(ValueError):
            b64url_decode(text)


# --- header form --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_missing_header(verifier: Verifier, value: str | None) -> None:
    with pytest.raises(BadSignature, match="missing"):
        verifier.verify(value, BODY)


def test_header_length_is_bounded(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    value = Signer(key).sign(BODY)
    assert len(value) < MAX_HEADER_CHARS
    with pytest.raises(BadSignature, match="longer than"):
        verifier.verify(value + "A" * (MAX_HEADER_CHARS + 1 - len(value)), BODY)


def test_attached_payload_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    protected, _, signature = hand_jws(key, BODY).split(".")
    # The classic compact form carries BASE64URL(payload) in the middle: refused, even
    # when it encodes the very body that is being checked.
    with pytest.raises(BadSignature, match="detached"):
        verifier.verify(f"{protected}.{indep_b64(BODY)}.{signature}", BODY)


@pytest.mark.parametrize("shape", ["x", "a.b", "a..b..c", "..", ".", "a...b", "...", "a..", "..b"])
def test_malformed_shapes(verifier: Verifier, shape: str) -> None:
    with pytest.raises(BadSignature):
        verifier.verify(shape, BODY)


def test_non_ascii_header_value(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    value = Signer(key).sign(BODY)
    with pytest.raises(BadSignature):
        verifier.verify(value[:-1] + "é", BODY)


def test_header_not_text(verifier: Verifier, key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(BadSignature):
        verifier.verify(Signer(key).sign(BODY).encode(), BODY)  # type: ignore[arg-type]


# --- protected header contents --------------------------------------------------------------


def signed_with_header(key: rsa.RSAPrivateKey, **changes: object) -> str:
    header: dict = {
        "alg": "PS256",
        "kid": indep_kid(key.public_key()),
        "b64": False,
        "crit": ["b64"],
    }
    for name, value in changes.items():
        if value is ...:
            del header[name]
        else:
            header[name] = value
    return hand_jws(key, BODY, header)


def test_alg_none_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    header = {"alg": "none", "kid": verifier.kid, "b64": False, "crit": ["b64"]}
    protected = indep_b64(json.dumps(header).encode())
    for value in (f"{protected}..", f"{protected}..AAAA"):
        with pytest.raises(BadSignature):
            verifier.verify(value, BODY)
    with pytest.raises(BadSignature, match="'none' is refused"):
        verifier.verify(f"{protected}..AAAA", BODY)


def test_hs256_with_public_key_as_secret_is_rejected(
    key: rsa.RSAPrivateKey, verifier: Verifier
) -> None:
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": verifier.kid, "b64": False, "crit": ["b64"]}
    protected = indep_b64(json.dumps(header).encode())
    for secret in (public_pem, public_der):
        mac = hmac.new(secret, protected.encode() + b"." + BODY, hashlib.sha256).digest()
        with pytest.raises(BadSignature, match="'HS256' is refused"):
            verifier.verify(f"{protected}..{indep_b64(mac)}", BODY)


def test_rs256_downgrade_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    # A genuine PKCS#1 v1.5 signature by the right key, declared as RS256, and also one
    # declared as PS256: neither is accepted.
    header = {"alg": "RS256", "kid": verifier.kid, "b64": False, "crit": ["b64"]}
    value = hand_jws(key, BODY, header, pad=padding.PKCS1v15())
    with pytest.raises(BadSignature, match="'RS256' is refused"):
        verifier.verify(value, BODY)
    value = hand_jws(key, BODY, pad=padding.PKCS1v15())
    with pytest.raises(BadSignature, match="does not match"):
        verifier.verify(value, BODY)


@pytest.mark.parametrize(
    "alg", ["PS384", "PS512", "ps256", "PS256 ", "ES256", "RS256", None, 256, ["PS256"], ...]
)
def test_other_algs_are_rejected(key: rsa.RSAPrivateKey, verifier: Verifier, alg: object) -> None:
    with pytest.raises(BadSignature, match="algorithm"):
        verifier.verify(signed_with_header(key, alg=alg), BODY)


def test_pss_with_other_hash_or_salt_is_rejected(
    key: rsa.RSAPrivateKey, verifier: Verifier
) -> None:
    variants = [
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        padding.PSS(mgf=padding.MGF1(hashes.SHA1()), salt_length=32),
    ]
    for pad in variants:
        with pytest.raises(BadSignature, match="does not match"):
            verifier.verify(hand_jws(key, BODY, pad=pad), BODY)
    with pytest.raises(BadSignature, match="does not match"):
        verifier.verify(hand_jws(key, BODY, algorithm=hashes.SHA384()), BODY)


def test_wrong_kid_is_rejected(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, verifier: Verifier
) -> None:
    # Validly signed by another key, honestly naming it: the kid check answers.
    with pytest.raises(BadSignature, match="signed with") as info:
        verifier.verify(Signer(other_key).sign(BODY), BODY)
    assert indep_kid(other_key.public_key())[:16] in info.value.detail
    assert verifier.kid[:16] in info.value.detail
    # Signed by another key but claiming ours: the signature check answers.
    with pytest.raises(BadSignature, match="does not match"):
        verifier.verify(signed_with_header(other_key, kid=verifier.kid), BODY)


@pytest.mark.parametrize("kid", ["", "A" * 64, "0" * 64, 123, None, ..., ["x"]])
def test_bad_kid_values(key: rsa.RSAPrivateKey, verifier: Verifier, kid: object) -> None:
    with pytest.raises(BadSignature, match="signed with"):
        verifier.verify(signed_with_header(key, kid=kid), BODY)


def test_kid_in_upper_case_is_rejected(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    with pytest.raises(BadSignature, match="signed with"):
        verifier.verify(signed_with_header(key, kid=verifier.kid.upper()), BODY)


@pytest.mark.parametrize("b64", [True, "false", 0, None, ...])
def test_b64_must_be_false(key: rsa.RSAPrivateKey, verifier: Verifier, b64: object) -> None:
    with pytest.raises(BadSignature, match="b64"):
        verifier.verify(signed_with_header(key, b64=b64), BODY)


@pytest.mark.parametrize(
    "crit",
    [..., [], "b64", ["b64", "b64"], ["b64", "exp"], ["exp"], ["B64"], [None], None, {"b64": True}],
)
def test_crit_must_be_exactly_b64(key: rsa.RSAPrivateKey, verifier: Verifier, crit: object) -> None:
    with pytest.raises(BadSignature, match="crit"):
        verifier.verify(signed_with_header(key, crit=crit), BODY)


@pytest.mark.parametrize(
    "extra",
    [{"typ": "JOSE"}, {"jku": "https://evil.example/keys"}, {"jwk": {}}, {"x5u": "x"}, {"exp": 1}],
)
def test_extra_header_members_are_rejected(
    key: rsa.RSAPrivateKey, verifier: Verifier, extra: dict
) -> None:
    with pytest.raises(BadSignature, match="members other than"):
        verifier.verify(signed_with_header(key, **extra), BODY)


@pytest.mark.parametrize(
    "header_json",
    [
        b"not json",
        b"[]",
        b'"PS256"',
        b'{"alg":"PS256","alg":"PS256","kid":"K","b64":false,"crit":["b64"]}',
        b'{"alg":"PS256","kid":"K","b64":false,"crit":["b64"]} x',
        b'\xff{"alg":"PS256"}',
        b"",
    ],
)
def test_protected_header_must_be_a_strict_json_object(
    key: rsa.RSAPrivateKey, verifier: Verifier, header_json: bytes
) -> None:
    header_json = header_json.replace(b'"K"', json.dumps(verifier.kid).encode())
    value = hand_jws(key, BODY, header_json=header_json)
    if header_json == b"":
        value = "." + value  # empty protected part
    with pytest.raises(BadSignature, match="header"):
        verifier.verify(value, BODY)


def test_details_never_echo_attacker_text(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    secret = "SECRET-<script>-\u202e-token"
    cases = [
        signed_with_header(key, alg=secret),
        signed_with_header(key, kid=secret),
        signed_with_header(key, crit=[secret]),
        signed_with_header(key, **{secret: 1}),
        indep_b64(secret.encode()) + "..AAAA",
        secret,
    ]
    for value in cases:
        with pytest.raises(BadSignature) as info:
            verifier.verify(value, BODY)
        assert "SECRET" not in info.value.detail
        assert "\u202e" not in info.value.detail


# --- keys ---------------------------------------------------------------------------------


def test_small_keys_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="at least 2048"):
        Signer(small)
    with pytest.raises(ValueError, match="at least 2048"):
        Verifier(small.public_key())


def test_wrong_key_types_are_refused(key: rsa.RSAPrivateKey) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TypeError):
        Signer(ec_key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Verifier(ec_key.public_key())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Verifier(key)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Signer(key.public_key())  # type: ignore[arg-type]


def test_repr_shows_no_key_material(key: rsa.RSAPrivateKey, verifier: Verifier) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    for text in (repr(Signer(key)), repr(verifier)):
        assert "PRIVATE" not in text and pem[40:80] not in text
        assert verifier.kid[:16] in text
