"""Identities of workspaces: RSA signing keys (PROTOCOL.md section 4) and the workspace TLS CA.

Every loader here takes text a user pasted or a file they named, so each refusal is a
ValidationError whose sentence names the field and says what to paste instead. No sentence
ever quotes the input: a private key pasted into the wrong field must not end up in an error
dialog, a log or a terminal scrollback.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import socket

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flowlink.errors import ValidationError

DEFAULT_KEY_BITS = 3072
MIN_KEY_BITS = 2048

# A PEM RSA-16384 private key is about 12 KiB; anything past 64 KiB is not one key.
MAX_PEM_CHARS = 64 * 1024
# Bounds the work of the block scan below on hostile input (many BEGIN lines, no END).
_MAX_PEM_BLOCKS = 16

CA_VALIDITY_DAYS = 3650
# 825 days is the longest lifetime Apple platforms accept for a TLS server certificate.
SERVER_CERT_VALIDITY_DAYS = 825
# Tolerates a peer whose clock runs a little behind ours right after issuing.
_BACKDATE = datetime.timedelta(minutes=5)

_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,48})-----")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,48})-----(.*?)-----END \1-----", re.DOTALL)
_SSH_PUBLIC_LINE = re.compile(r"^\s*(ssh-rsa|ssh-ed25519|ssh-dss|ecdsa-sha2-\S+) ", re.MULTILINE)
_NOT_PEM_TEXT = re.compile(r"[^\t\n\r\x20-\x7e]")
_DNS_NAME = re.compile(
    r"^(\*\.)?(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)

_PRIVATE_LABELS = frozenset(
    {
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    }
)
_PUBLIC_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})
_CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"})
_REQUEST_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
# `openssl ecparam -genkey` writes this block in front of the EC key itself.
_EC_PARAMETERS = "EC PARAMETERS"


# --- RSA signing keys ------------------------------------------------------------------------


def generate_private_key(bits: int = DEFAULT_KEY_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """Lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def keys_pair(private_key: rsa.RSAPrivateKey, public_key: rsa.RSAPublicKey) -> bool:
    """True when ``public_key`` is the public half of ``private_key``."""
    return key_id(private_key.public_key()) == key_id(public_key)


def private_key_to_pem(key: PrivateKeyTypes) -> str:
    """PKCS#8, unencrypted: the secret store is what protects it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_to_pem(public_key: PublicKeyTypes) -> str:
    """SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"), the form `key_id` hashes."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_private_key(pem: str | bytes, field: str) -> rsa.RSAPrivateKey:
    """Parse a pasted PEM RSA private key of at least 2048 bits, or say what is wrong with it."""
    what = "private key"
    text = _checked_text(pem, field, what)
    label, block = _single_block(text, field, what, "PRIVATE KEY")
    if label in _PUBLIC_LABELS:
        raise ValidationError(
            field,
            f"{field} is a public key, but a private key is expected here; "
            "paste this workspace's own PEM private key.",
        )
    if label in _CERTIFICATE_LABELS:
        raise ValidationError(
            field,
            f"{field} is a certificate, not a private key; "
            "paste the PEM private key (its first line ends in 'PRIVATE KEY-----').",
        )
    if label not in _PRIVATE_LABELS:
        raise _other_block(field, label, what)
    if label == "ENCRYPTED PRIVATE KEY" or "Proc-Type: 4,ENCRYPTED" in block:
        raise _encrypted(field)
    try:
        if label == "OPENSSH PRIVATE KEY":
            key = serialization.load_ssh_private_key(block.encode("ascii"), password=None)
        else:
            key = serialization.load_pem_private_key(block.encode("ascii"), password=None)
    except TypeError:
        # cryptography's way of saying "a password is needed": the key is encrypted.
        raise _encrypted(field) from None
    except (ValueError, UnsupportedAlgorithm):
        raise _damaged(field, what) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _not_rsa(field, key)
    _check_size(field, key.key_size)
    return key


def load_public_key(pem: str | bytes, field: str) -> rsa.RSAPublicKey:
    """Parse a pasted PEM RSA public key (SPKI or PKCS#1) of at least 2048 bits."""
    what = "public key"
    text = _checked_text(pem, field, what)
    if "-----BEGIN" not in text and _SSH_PUBLIC_LINE.search(text):
        raise ValidationError(
            field,
            f"{field} is an OpenSSH public key line, not PEM; convert it with "
            "'ssh-keygen -e -m PKCS8 -f KEY.pub' and paste the result.",
        )
    label, block = _single_block(text, field, what, "PUBLIC KEY")
    if label in _PRIVATE_LABELS:
        raise ValidationError(
            field,
            f"{field} is a private key, but a public key is expected here; paste the other "
            "workspace's public key, never a private key ('openssl pkey -pubout' derives it).",
        )
    if label in _CERTIFICATE_LABELS:
        raise ValidationError(
            field,
            f"{field} is a certificate, not a public key; paste the public key itself "
            "('openssl x509 -pubkey -noout -in CERT' prints the one in a certificate).",
        )
    if label not in _PUBLIC_LABELS:
        raise _other_block(field, label, what)
    try:
        key = serialization.load_pem_public_key(block.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm):
        raise _damaged(field, what) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise _not_rsa(field, key)
    _check_size(field, key.key_size)
    return key


def load_ca_certificate(pem: str | bytes, field: str) -> x509.Certificate:
    """Parse a pasted PEM X.509 certificate (the remote workspace's CA certificate)."""
    what = "certificate"
    text = _checked_text(pem, field, what)
    label, block = _single_block(text, field, what, "CERTIFICATE")
    if label in _PRIVATE_LABELS or label in _PUBLIC_LABELS:
        kind = "private" if label in _PRIVATE_LABELS else "public"
        raise ValidationError(
            field,
            f"{field} is a {kind} key, not a certificate; paste the PEM CA certificate "
            "(it starts with '-----BEGIN CERTIFICATE-----').",
        )
    if label not in _CERTIFICATE_LABELS:
        raise _other_block(field, label, what)
    if label != "CERTIFICATE":
        # OpenSSL's "TRUSTED CERTIFICATE" carries trust settings after the DER certificate,
        # which the X.509 parser refuses; the plain form is what every tool writes by default.
        raise ValidationError(
            field,
            f"{field} is not a plain PEM certificate; convert it with "
            "'openssl x509 -in CERT -out plain.pem' and paste the result.",
        )
    try:
        return x509.load_pem_x509_certificate(block.encode("ascii"))
    except ValueError:
        raise _damaged(field, what) from None


def load_tls_private_key(pem: str, field: str) -> PrivateKeyTypes:
    """Read back a TLS key this module made (EC P-256) or a user's own RSA/EC key."""
    what = "private key"
    text = _checked_text(pem, field, what)
    label, block = _single_block(text, field, what, "PRIVATE KEY")
    if label not in _PRIVATE_LABELS or label == "ENCRYPTED PRIVATE KEY":
        raise _other_block(field, label, what)
    try:
        key = serialization.load_pem_private_key(block.encode("ascii"), password=None)
    except TypeError:
        raise _encrypted(field) from None
    except (ValueError, UnsupportedAlgorithm):
        raise _damaged(field, what) from None
    if isinstance(key, rsa.RSAPrivateKey):
        _check_size(field, key.key_size)
    elif not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValidationError(field, f"{field} must be an RSA or EC key for TLS.")
    return key


def _checked_text(pem: str | bytes, field: str, what: str) -> str:
    if isinstance(pem, bytes):
        if len(pem) > MAX_PEM_CHARS:
            raise _too_large(field)
        try:
            pem = pem.decode("ascii")
        except UnicodeDecodeError:
            raise _binary(field) from None
    if not isinstance(pem, str):
        raise ValidationError(field, f"{field} must be PEM text.")
    if len(pem) > MAX_PEM_CHARS:
        raise _too_large(field)
    if _NOT_PEM_TEXT.search(pem):
        raise _binary(field)
    if not pem.strip():
        raise ValidationError(field, f"{field} is empty; paste the PEM {what}.")
    return pem


def _single_block(text: str, field: str, what: str, expected_label: str) -> tuple[str, str]:
    begins = len(_PEM_BEGIN.findall(text))
    if begins == 0:
        raise ValidationError(
            field,
            f"{field} is not a PEM {what}: paste the text that starts with "
            f"'-----BEGIN {expected_label}-----'.",
        )
    if begins > _MAX_PEM_BLOCKS:
        raise ValidationError(
            field, f"{field} contains {begins} PEM blocks; paste exactly one {what}."
        )
    blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(text)]
    if len(blocks) < begins:
        raise ValidationError(
            field,
            f"{field} has a '-----BEGIN' line without its matching '-----END' line; "
            "paste the whole PEM text.",
        )
    keys = [b for b in blocks if b[0] != _EC_PARAMETERS]
    if not keys:
        raise ValidationError(
            field,
            f"{field} holds only EC parameters, not a key; "
            "Flowlink needs an RSA key of at least 2048 bits.",
        )
    if len(keys) > 1:
        raise ValidationError(
            field, f"{field} contains {len(keys)} PEM blocks; paste exactly one {what}."
        )
    return keys[0]


def _check_size(field: str, bits: int) -> None:
    if bits < MIN_KEY_BITS:
        raise ValidationError(
            field,
            f"{field} is {bits} bits; Flowlink needs an RSA key of at least {MIN_KEY_BITS} bits.",
        )


def _key_kind(key: object) -> str:
    kinds: list[tuple[tuple[type, ...], str]] = [
        ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "an EC key"),
        ((ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey), "an Ed25519 key"),
        ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "an Ed448 key"),
        ((x25519.X25519PrivateKey, x25519.X25519PublicKey), "an X25519 key"),
        ((x448.X448PrivateKey, x448.X448PublicKey), "an X448 key"),
        ((dsa.DSAPrivateKey, dsa.DSAPublicKey), "a DSA key"),
    ]
    for types, name in kinds:
        if isinstance(key, types):
            return name
    return "a key of a type other than RSA"


def _not_rsa(field: str, key: object) -> ValidationError:
    return ValidationError(
        field,
        f"{field} is {_key_kind(key)}; Flowlink needs an RSA key of at least {MIN_KEY_BITS} bits.",
    )


def _other_block(field: str, label: str, what: str) -> ValidationError:
    if label in _REQUEST_LABELS:
        return ValidationError(
            field, f"{field} is a certificate signing request, not a {what}; paste the {what}."
        )
    # The label comes from the input, so it is described, never quoted.
    return ValidationError(field, f"{field} is a PEM block of another kind, not a {what}.")


def _encrypted(field: str) -> ValidationError:
    return ValidationError(
        field,
        f"{field} is encrypted with a passphrase, which Flowlink cannot keep; it protects the "
        "key in the secret store instead, so paste an unencrypted copy "
        "('openssl pkey -in KEY.pem -out plain.pem' asks for the passphrase and writes one).",
    )


def _damaged(field: str, what: str) -> ValidationError:
    return ValidationError(
        field,
        f"{field} could not be read as a PEM {what}: the text between its BEGIN and END lines "
        "is damaged or incomplete; paste the whole file again.",
    )


def _too_large(field: str) -> ValidationError:
    return ValidationError(
        field,
        f"{field} is larger than {MAX_PEM_CHARS // 1024} KiB, far more than one PEM key or "
        "certificate; paste only the key or certificate.",
    )


def _binary(field: str) -> ValidationError:
    return ValidationError(
        field,
        f"{field} contains binary data or control characters, not PEM text; paste the text "
        "of the PEM file (it starts with '-----BEGIN'). A DER file can be converted with "
        "'openssl pkey -inform DER' (keys) or 'openssl x509 -inform DER' (certificates).",
    )


# --- Workspace TLS ---------------------------------------------------------------------------
#
# The CA and server keys are EC P-256, not RSA: the protocol pins RSA only for the link
# signatures (PROTOCOL.md section 4), and for TLS P-256 gives the strength of RSA-3072
# (128-bit) with ~1 ms key generation instead of 70-200 ms, a cheaper handshake signature on
# the serving side, and smaller certificates, while every TLS stack Flowlink talks to
# (OpenSSL behind httpx/ssl, browsers, curl) supports it.


def make_ca(workspace_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA for this workspace only: it may sign server certificates, not further CAs."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Flowlink"),
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name("Flowlink CA ", workspace_name)),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_certificate(
    ca_key: CertificateIssuerPrivateKeyTypes,
    ca_cert: x509.Certificate,
    workspace_name: str,
    extra_names: list[str],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate for this host, signed by the workspace CA.

    SANs: localhost, 127.0.0.1, ::1, this host's name and ``extra_names`` (the
    ``--tls-name`` values; an IP address becomes an IP SAN). A bad extra name is a
    ValidationError on the field "tls_name".
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Flowlink"),
            x509.NameAttribute(NameOID.COMMON_NAME, _common_name("Flowlink ", workspace_name)),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=SERVER_CERT_VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(server_names(extra_names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def server_names(extra_names: list[str]) -> list[x509.GeneralName]:
    """The SANs of a server certificate, de-duplicated, in a stable order."""
    names: list[x509.GeneralName] = []
    seen: set[str] = set()

    def add(value: str, *, strict: bool) -> None:
        value = value.strip()
        try:
            address = ipaddress.ip_address(value.strip("[]"))
        except ValueError:
            address = None
        if address is not None:
            general: x509.GeneralName = x509.IPAddress(address)
            marker = f"ip:{address}"
        elif _DNS_NAME.match(value):
            general = x509.DNSName(value.rstrip(".").lower())
            marker = f"dns:{value.rstrip('.').lower()}"
        elif strict:
            raise ValidationError(
                "tls_name",
                "A TLS name must be a host name (letters, digits, '-' and '.') or an IP "
                "address; give each name on its own.",
            )
        else:
            return
        if marker not in seen:
            seen.add(marker)
            names.append(general)

    add("localhost", strict=True)
    add("127.0.0.1", strict=True)
    add("::1", strict=True)
    # A host name that is not a valid DNS name (it happens) cannot be a SAN; peers then
    # reach this host by one of the --tls-name values instead.
    add(socket.gethostname(), strict=False)
    for extra in extra_names:
        add(extra, strict=True)
    return names


def certificate_needs_renewal(
    cert: x509.Certificate, within_days: int = 30, now: datetime.datetime | None = None
) -> bool:
    """True when ``cert`` has expired or expires within ``within_days`` days."""
    now = now or _now()
    return cert.not_valid_after_utc - now <= datetime.timedelta(days=within_days)


def cert_to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``openssl x509 -fingerprint -sha256`` prints it (AB:CD:...)."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _common_name(prefix: str, workspace_name: str) -> str:
    # X.509 caps a common name at 64 characters; the CN is only for people to read.
    return (prefix + workspace_name)[:64] or "Flowlink"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
