"""The ``Flowlink-Signature`` header (PROTOCOL.md section 4).

A detached JWS with unencoded payload (RFC 7515 appendix F, RFC 7797)::

    BASE64URL(protected header) ".." BASE64URL(signature)
    signing input = ASCII(BASE64URL(protected header)) "." body

PS256 (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32). The verifier takes
key and algorithm from its own configuration, never from the header.

Decisions where PROTOCOL.md is silent:

- The protected header holds exactly ``alg``, ``kid``, ``b64`` and ``crit``;
  any other member is refused (``jku``, ``jwk``, ``x5u``... are never
  honoured, and refusing them keeps the two sides' readings identical). Its
  member order and whitespace are free: it is parsed as strict JSON.
- Base64url must be canonical: no padding, only ``A-Z a-z 0-9 - _``, and
  unused trailing bits zero, so that one signature has one spelling.
- The header value is at most 4096 characters.
- Details never quote the header, except a presented ``alg`` or ``kid`` that
  is a short plain token (so that a user can see which key the peer used).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from flowlink.link.strict_json import BadJSON, dumps_canonical, parse_strict
from flowlink.workspace.identity import MIN_KEY_BITS, key_id

ALG = "PS256"
SALT_LENGTH = 32
MAX_HEADER_CHARS = 4096
HEADER_NAME = "Flowlink-Signature"

__all__ = [
    "ALG",
    "HEADER_NAME",
    "BadSignature",
    "Signer",
    "Verifier",
    "b64url_decode",
    "b64url_encode",
]

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_ALG_TOKEN_RE = re.compile(r"[A-Za-z0-9]{1,16}")
_KID_RE = re.compile(r"[0-9a-f]{64}")
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=SALT_LENGTH)
_HEADER_MEMBERS = frozenset({"alg", "kid", "b64", "crit"})


class BadSignature(ValueError):
    """The signature header is missing, malformed or does not verify; ``detail`` says which."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Canonical unpadded base64url, else ``ValueError``."""
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not unpadded base64url") from None
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def _signing_digest(header_b64: str, body: bytes) -> bytes:
    # Hash in two updates instead of concatenating: a 4 MiB body is not copied.
    digest = hashes.Hash(hashes.SHA256())
    digest.update(header_b64.encode("ascii") + b".")
    digest.update(body)
    return digest.finalize()


def _check_key_size(bits: int) -> None:
    if bits < MIN_KEY_BITS:
        raise ValueError(f"an RSA key of {bits} bits is too small; use at least {MIN_KEY_BITS}")


class Signer:
    """Signs bodies with this workspace's own private key for one link."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise TypeError("Signer needs an RSA private key")
        _check_key_size(private_key.key_size)
        self._key = private_key
        self.kid = key_id(private_key.public_key())
        header = {"alg": ALG, "kid": self.kid, "b64": False, "crit": ["b64"]}
        self._header_b64 = b64url_encode(dumps_canonical(header))

    def sign(self, body: bytes) -> str:
        """The ``Flowlink-Signature`` header value for exactly these body bytes."""
        digest = _signing_digest(self._header_b64, body)
        signature = self._key.sign(digest, _PSS, Prehashed(hashes.SHA256()))
        return f"{self._header_b64}..{b64url_encode(signature)}"

    def __repr__(self) -> str:
        return f"Signer(kid={self.kid[:16]}...)"


class Verifier:
    """Verifies bodies against the remote public key configured for one link."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise TypeError("Verifier needs an RSA public key")
        _check_key_size(public_key.key_size)
        self._key = public_key
        self._signature_bytes = (public_key.key_size + 7) // 8
        self.kid = key_id(public_key)

    def __repr__(self) -> str:
        return f"Verifier(kid={self.kid[:16]}...)"

    def verify(self, header_value: str | None, body: bytes) -> None:
        """Return if ``header_value`` is a valid signature of ``body`` by this key, else raise."""
        header_b64, signature = self._split(header_value)
        self._check_header(header_b64)
        if len(signature) != self._signature_bytes:
            raise BadSignature(
                f"The signature is {len(signature)} bytes; this link's key makes "
                f"{self._signature_bytes}-byte signatures."
            )
        try:
            self._key.verify(
                signature, _signing_digest(header_b64, body), _PSS, Prehashed(hashes.SHA256())
            )
        except InvalidSignature:
            raise BadSignature(
                "The signature does not match the body: it was altered, or signed by another key."
            ) from None

    @staticmethod
    def _split(header_value: str | None) -> tuple[str, bytes]:
        if header_value is None or header_value == "":
            raise BadSignature(f"The {HEADER_NAME} header is missing.")
        if not isinstance(header_value, str):
            raise BadSignature(f"The {HEADER_NAME} header is not text.")
        if len(header_value) > MAX_HEADER_CHARS:
            raise BadSignature(
                f"The {HEADER_NAME} header is longer than {MAX_HEADER_CHARS} characters."
            )
        parts = header_value.split(".")
        if len(parts) != 3:
            raise BadSignature(
                f"The {HEADER_NAME} header must have the form <header>..<signature>."
            )
        header_b64, payload, signature_b64 = parts
        if payload:
            raise BadSignature(
                f"The {HEADER_NAME} header carries a payload; it must be detached "
                "(<header>..<signature>)."
            )
        if not header_b64 or not signature_b64:
            raise BadSignature(f"The {HEADER_NAME} header lacks its header or signature part.")
        try:
            signature = b64url_decode(signature_b64)
        except ValueError:
            raise BadSignature("The signature part is not canonical unpadded base64url.") from None
        return header_b64, signature

    def _check_header(self, header_b64: str) -> None:
        try:
            raw = b64url_decode(header_b64)
        except ValueError:
            raise BadSignature(
                "The protected header is not canonical unpadded base64url."
            ) from None
        try:
            header = parse_strict(raw, max_bytes=MAX_HEADER_CHARS, max_depth=2)
        except BadJSON:
            raise BadSignature("The protected header is not strict JSON.") from None
        if type(header) is not dict:
            raise BadSignature("The protected header is not a JSON object.")
        alg = header.get("alg")
        if alg != ALG or type(alg) is not str:
            shown = f" '{alg}'" if type(alg) is str and _ALG_TOKEN_RE.fullmatch(alg) else ""
            raise BadSignature(
                f"The signature algorithm{shown} is refused; only {ALG} is accepted."
            )
        kid = header.get("kid")
        if kid != self.kid or type(kid) is not str:
            shown = (
                f" {kid[:16]}..."
                if type(kid) is str and _KID_RE.fullmatch(kid)
                else " an unknown key"
            )
            raise BadSignature(
                f"The body is signed with{shown}, not with this link's remote public key "
                f"{self.kid[:16]}...; check the remote public key in the Synch Config."
            )
        if header.get("b64", True) is not False:
            raise BadSignature('The protected header must say "b64": false (unencoded payload).')
        crit = header.get("crit")
        if type(crit) is not list or crit != ["b64"]:
            raise BadSignature('The protected header\'s crit must be exactly ["b64"].')
        if set(header) != _HEADER_MEMBERS:
            raise BadSignature(
                "The protected header has members other than alg, kid, b64 and crit."
            )
