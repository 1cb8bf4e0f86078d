"""Identity keys and workspace TLS: every refusal sentence, key ids, and a CA chain that works."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlink.errors import ValidationError
from flowlink.workspace.identity import (
    cert_to_pem,
    certificate_needs_renewal,
    fingerprint,
    generate_private_key,
    key_id,
    keys_pair,
    load_ca_certificate,
    load_private_key,
    load_public_key,
    load_tls_private_key,
    make_ca,
    make_server_certificate,
    private_key_to_pem,
    public_key_to_pem,
)

FIELD = "Own private key"
PUB_FIELD = "Remote public key"
CA_FIELD = "CA certificate"


@pytest.fixture(scope="module")
def rsa3072() -> rsa.RSAPrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return generate_private_key(2048)


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    # Too small for Flowlink on purpose; cryptography still makes one for the refusal test.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return make_ca("alpha")


@pytest.fixture(scope="module")
def server(ca) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    return make_server_certificate(
        ca_key, ca_cert, "alpha", ["flow.example.org", "10.1.2.3", "fd00::7", "Flow.Example.ORG"]
    )


def _message(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return excinfo.value.message


def _base64_windows(pem: str, width: int = 12) -> set[str]:
    """Every `width`-character run of the base64 body of a PEM text."""
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return {body[i : i + width] for i in range(0, max(1, len(body) - width + 1))}


def _assert_no_material(message: str, pem: str) -> None:
    leaked = [w for w in _base64_windows(pem) if w in message]
    assert not leaked, "the error sentence quotes part of the key"


# --- parsing: the happy paths ----------------------------------------------------------------


def test_private_and_public_pem_round_trip_with_stable_key_id(rsa3072):
    pem = private_key_to_pem(rsa3072)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    loaded = load_private_key(pem, FIELD)
    assert loaded.private_numbers() == rsa3072.private_numbers()

    public_pem = public_key_to_pem(rsa3072.public_key())
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    public = load_public_key(public_pem, PUB_FIELD)

    der = rsa3072.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hashlib.sha256(der).hexdigest()
    assert key_id(public) == expected
    assert key_id(loaded.public_key()) == expected
    assert key_id(load_public_key(public_pem, PUB_FIELD)) == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)
    assert keys_pair(loaded, public)


def test_other_rsa_encodings_load_to_the_same_key_id(rsa3072):
    pkcs1_public = rsa3072.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pkcs1_public.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    traditional = rsa3072.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    openssh = rsa3072.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    expected = key_id(rsa3072.public_key())
    assert key_id(load_public_key(pkcs1_public, PUB_FIELD)) == expected
    assert key_id(load_private_key(traditional.decode(), FIELD).public_key()) == expected
    assert key_id(load_private_key(openssh.decode(), FIELD).public_key()) == expected


def test_text_around_the_block_and_windows_line_ends_are_accepted(rsa2048):
    pem = "Bag Attributes: exported by a tool\r\n" + private_key_to_pem(rsa2048).replace(
        "\n", "\r\n"
    )
    assert load_private_key(pem, FIELD).key_size == 2048


def test_2048_bits_is_the_smallest_accepted_size(rsa2048):
    assert load_public_key(public_key_to_pem(rsa2048.public_key()), PUB_FIELD).key_size == 2048


def test_keys_pair_is_false_for_different_keys(rsa3072, rsa2048):
    assert not keys_pair(rsa3072, rsa2048.public_key())


# --- parsing: every refusal ------------------------------------------------------------------


def test_public_key_where_private_key_is_expected(rsa3072):
    pem = public_key_to_pem(rsa3072.public_key())
    with pytest.raises(ValidationError) as excinfo:
        load_private_key(pem, FIELD)
    assert excinfo.value.field == FIELD
    assert _message(excinfo) == (
        "Own private key is a public key, but a private key is expected here; "
        "paste this workspace's own PEM private key."
    )
    _assert_no_material(_message(excinfo), pem)


def test_private_key_where_public_key_is_expected(rsa3072):
    pem = private_key_to_pem(rsa3072)
    with pytest.raises(ValidationError) as excinfo:
        load_public_key(pem, PUB_FIELD)
    assert excinfo.value.field == PUB_FIELD
    assert _message(excinfo).startswith(
        "Remote public key is a private key, but a public key is expected here;"
    )
    _assert_no_material(_message(excinfo), pem)


@pytest.mark.parametrize("loader", [load_private_key, load_public_key])
def test_certificate_where_key_is_expected(loader, ca):
    pem = cert_to_pem(ca[1])
    with pytest.raises(ValidationError) as excinfo:
        loader(pem, "Key")
    assert re.match(
        r"Key is a certificate, not a (private|public) key; paste the", _message(excinfo)
    )
    _assert_no_material(_message(excinfo), pem)


@pytest.mark.parametrize(
    "make_pem, kind",
    [
        (lambda k: private_key_to_pem(k), "private"),
        (lambda k: public_key_to_pem(k.public_key()), "public"),
    ],
)
def test_key_where_certificate_is_expected(make_pem, kind, rsa2048):
    pem = make_pem(rsa2048)
    with pytest.raises(ValidationError) as excinfo:
        load_ca_certificate(pem, CA_FIELD)
    assert excinfo.value.field == CA_FIELD
    assert _message(excinfo) == (
        f"CA certificate is a {kind} key, not a certificate; paste the PEM CA certificate "
        "(it starts with '-----BEGIN CERTIFICATE-----')."
    )


def test_1024_bit_keys_are_refused_in_both_fields(rsa1024):
    sentence = "{} is 1024 bits; Flowlink needs an RSA key of at least 2048 bits."
    with pytest.raises(ValidationError) as private_error:
        load_private_key(private_key_to_pem(rsa1024), FIELD)
    assert _message(private_error) == sentence.format(FIELD)
    with pytest.raises(ValidationError) as public_error:
        load_public_key(public_key_to_pem(rsa1024.public_key()), PUB_FIELD)
    assert _message(public_error) == sentence.format(PUB_FIELD)


@pytest.mark.parametrize(
    "key, kind",
    [
        (ec.generate_private_key(ec.SECP256R1()), "an EC key"),
        (ed25519.Ed25519PrivateKey.generate(), "an Ed25519 key"),
    ],
    ids=["ec", "ed25519"],
)
def test_keys_that_are_not_rsa_are_refused(key, kind):
    expected = "{} is " + kind + "; Flowlink needs an RSA key of at least 2048 bits."
    with pytest.raises(ValidationError) as private_error:
        load_private_key(private_key_to_pem(key), FIELD)
    assert _message(private_error) == expected.format(FIELD)
    with pytest.raises(ValidationError) as public_error:
        load_public_key(public_key_to_pem(key.public_key()), PUB_FIELD)
    assert _message(public_error) == expected.format(PUB_FIELD)


def test_openssl_ec_key_with_parameters_block_is_named_as_ec():
    key = ec.generate_private_key(ec.SECP384R1())
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    pem = "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n" + traditional
    with pytest.raises(ValidationError, match=r"^Own private key is an EC key; Flowlink needs"):
        load_private_key(pem, FIELD)


def _encrypted_openssh_key(tmp_path: Path) -> str:
    # cryptography needs bcrypt to write this format; ssh-keygen is the tool users have.
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen is None:
        pytest.skip("ssh-keygen is needed to make an encrypted OpenSSH key")
    path = tmp_path / "id_rsa"
    subprocess.run(
        [ssh_keygen, "-q", "-t", "rsa", "-b", "2048", "-N", "correct horse", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text()


@pytest.mark.parametrize("key_format", ["pkcs8", "traditional", "openssh"])
def test_encrypted_private_keys_are_refused(key_format, rsa2048, tmp_path):
    if key_format == "openssh":
        pem = _encrypted_openssh_key(tmp_path)
    else:
        formats = {
            "pkcs8": serialization.PrivateFormat.PKCS8,
            "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
        }
        pem = rsa2048.private_bytes(
            serialization.Encoding.PEM,
            formats[key_format],
            serialization.BestAvailableEncryption(b"correct horse"),
        ).decode()
    with pytest.raises(ValidationError) as excinfo:
        load_private_key(pem, FIELD)
    assert _message(excinfo).startswith(
        "Own private key is encrypted with a passphrase, which Flowlink cannot keep;"
    )
    assert "openssl pkey" in _message(excinfo)
    _assert_no_material(_message(excinfo), pem)


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00",
        b"\x00\x01\x02 not text",
        "-----BEGIN PRIVATE KEY-----\n\x00\x07\x1b\n-----END PRIVATE KEY-----\n",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\x0c",
    ],
    ids=["der-bytes", "nul-bytes", "control-chars-in-pem", "form-feed"],
)
def test_binary_garbage_is_refused(data):
    with pytest.raises(ValidationError) as excinfo:
        load_private_key(data, FIELD)
    assert _message(excinfo).startswith(
        "Own private key contains binary data or control characters, not PEM text;"
    )


def test_der_key_bytes_are_refused_as_binary(rsa2048):
    der = rsa2048.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValidationError, match="binary data or control characters"):
        load_public_key(der, PUB_FIELD)


@pytest.mark.parametrize("loader", [load_private_key, load_public_key, load_ca_certificate])
def test_a_megabyte_of_text_is_refused_quickly(loader, rsa2048):
    # A real key repeated: it would parse if the size bound were missing.
    pem = private_key_to_pem(rsa2048) if loader is load_private_key else "A" * 100
    text = (pem * (1_000_000 // len(pem) + 1))[:1_000_000]
    started = time.perf_counter()
    with pytest.raises(ValidationError) as excinfo:
        loader(text, "Field")
    assert time.perf_counter() - started < 0.5
    assert _message(excinfo).startswith("Field is larger than 64 KiB")


def test_many_begin_lines_without_end_are_refused_quickly():
    text = "-----BEGIN PRIVATE KEY-----\n" * 2000
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="contains 2000 PEM blocks"):
        load_private_key(text, FIELD)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "loader, expected",
    [
        (load_private_key, "'-----BEGIN PRIVATE KEY-----'"),
        (load_public_key, "'-----BEGIN PUBLIC KEY-----'"),
        (load_ca_certificate, "'-----BEGIN CERTIFICATE-----'"),
    ],
)
def test_text_that_is_not_pem_at_all(loader, expected):
    with pytest.raises(ValidationError) as excinfo:
        loader("my key is hunter2", "Field")
    assert _message(excinfo).startswith("Field is not a PEM ")
    assert expected in _message(excinfo)
    assert "hunter2" not in _message(excinfo)


def test_empty_input():
    with pytest.raises(ValidationError, match=r"^Field is empty; paste the PEM public key\.$"):
        load_public_key("  \n", "Field")


def test_missing_end_line(rsa2048):
    pem = private_key_to_pem(rsa2048)
    truncated = pem[: len(pem) // 2]
    with pytest.raises(ValidationError, match="without its matching '-----END' line"):
        load_private_key(truncated, FIELD)


def test_damaged_body(rsa2048):
    lines = private_key_to_pem(rsa2048).splitlines()
    del lines[5:9]
    pem = "\n".join(lines) + "\n"
    with pytest.raises(ValidationError) as excinfo:
        load_private_key(pem, FIELD)
    assert _message(excinfo).startswith(
        "Own private key could not be read as a PEM private key: the text between"
    )
    _assert_no_material(_message(excinfo), pem)


def test_two_keys_in_one_field(rsa2048, rsa3072):
    pem = private_key_to_pem(rsa2048) + private_key_to_pem(rsa3072)
    with pytest.raises(ValidationError, match="contains 2 PEM blocks; paste exactly one private"):
        load_private_key(pem, FIELD)


def test_openssh_public_key_line_gets_a_conversion_hint(rsa2048):
    line = (
        rsa2048.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with pytest.raises(ValidationError) as excinfo:
        load_public_key(line + " me@host\n", PUB_FIELD)
    assert "is an OpenSSH public key line, not PEM" in _message(excinfo)
    assert "ssh-keygen -e -m PKCS8" in _message(excinfo)
    assert line.split()[1][:20] not in _message(excinfo)


def test_certificate_request_is_named(rsa2048):
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(rsa2048, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(ValidationError, match="is a certificate signing request, not a cert"):
        load_ca_certificate(pem, CA_FIELD)


def test_unknown_block_label_is_described_not_quoted():
    pem = "-----BEGIN SECRET SAUCE-----\nAAAA\n-----END SECRET SAUCE-----\n"
    with pytest.raises(ValidationError) as excinfo:
        load_public_key(pem, PUB_FIELD)
    assert (
        _message(excinfo) == "Remote public key is a PEM block of another kind, not a public key."
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_keys_only_ever_give_a_validation_sentence_without_key_material(data, rsa2048):
    pem = private_key_to_pem(rsa2048)
    start = data.draw(st.integers(0, len(pem) - 1))
    length = data.draw(st.integers(0, 64))
    replacement = data.draw(st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=8))
    mangled = pem[:start] + replacement + pem[start + length :]
    for loader in (load_private_key, load_public_key, load_ca_certificate):
        try:
            loader(mangled, "Field")
        except ValidationError as error:
            assert error.field == "Field"
            assert error.message.startswith("Field ")
            _assert_no_material(error.message, pem)


# --- workspace TLS ---------------------------------------------------------------------------


def test_ca_is_a_ten_year_ca_that_signs_only_leaf_certificates(ca):
    _, cert = ca
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and not usage.value.digital_signature
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=3650) <= lifetime <= datetime.timedelta(days=3651)
    assert "alpha" in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cert.verify_directly_issued_by(cert)


def test_server_certificate_chains_to_the_ca_with_all_names(ca, server):
    _, ca_cert = ca
    _, cert = server
    cert.verify_directly_issued_by(ca_cert)
    assert cert.issuer == ca_cert.subject

    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = sans.get_values_for_type(x509.DNSName)
    ips = sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in dns and "flow.example.org" in dns
    assert dns.count("flow.example.org") == 1  # the upper-case duplicate is folded
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address("::1") in ips
    assert ipaddress.ip_address("10.1.2.3") in ips and "10.1.2.3" not in dns
    assert ipaddress.ip_address("fd00::7") in ips
    hostname = socket.gethostname().lower()
    if re.fullmatch(r"[a-z0-9.-]+", hostname):
        assert hostname in dns

    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=825) <= lifetime <= datetime.timedelta(days=826)


def test_a_certificate_from_another_ca_does_not_verify(ca):
    other_key, other_ca = make_ca("beta")
    _, foreign = make_server_certificate(other_key, other_ca, "beta", [])
    with pytest.raises(ValueError):
        foreign.verify_directly_issued_by(ca[1])


def _handshake(
    tmp_path: Path, ca_cert: x509.Certificate, key, cert: x509.Certificate, server_name: str
) -> None:
    """A real TLS handshake through OpenSSL, in memory, verifying like a peer would."""
    (tmp_path / "cert.pem").write_text(cert_to_pem(cert))
    (tmp_path / "key.pem").write_text(private_key_to_pem(key))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(cadata=cert_to_pem(ca_cert))
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, to_server, server_hostname=server_name)
    tls_server = server_context.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", tls_server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(to_server.read())
        to_client.write(server_out.read())
        if all(done.values()):
            return
    raise AssertionError("the TLS handshake did not finish")


@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1", "flow.example.org", "10.1.2.3"])
def test_tls_handshake_verifies_against_the_ca(tmp_path, ca, server, server_name):
    _handshake(tmp_path, ca[1], server[0], server[1], server_name)


def test_tls_handshake_fails_for_a_name_not_in_the_certificate(tmp_path, ca, server):
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path, ca[1], server[0], server[1], "elsewhere.example.org")


@pytest.mark.parametrize("bad", ["bad name", "under_score.example", "a/b", "-lead.example", ""])
def test_invalid_tls_names_are_refused(ca, bad):
    with pytest.raises(ValidationError) as excinfo:
        make_server_certificate(ca[0], ca[1], "alpha", [bad])
    assert excinfo.value.field == "tls_name"
    assert excinfo.value.message.startswith("A TLS name must be a host name")


def test_renewal_is_due_within_the_window_and_after_expiry(server):
    _, cert = server
    expires = cert.not_valid_after_utc
    assert certificate_needs_renewal(cert) is False
    assert certificate_needs_renewal(cert, now=expires - datetime.timedelta(days=31)) is False
    assert certificate_needs_renewal(cert, now=expires - datetime.timedelta(days=29)) is True
    assert certificate_needs_renewal(cert, now=expires + datetime.timedelta(days=1)) is True
    assert certificate_needs_renewal(cert, within_days=900) is True


def test_ca_certificate_round_trips_and_fingerprint_matches_openssl(tmp_path, ca):
    _, cert = ca
    pem = cert_to_pem(cert)
    assert load_ca_certificate(pem, CA_FIELD) == cert
    expected = cert.fingerprint(hashes.SHA256()).hex().upper()
    assert fingerprint(cert).replace(":", "") == expected
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fingerprint(cert))
    openssl = shutil.which("openssl")
    if openssl:
        (tmp_path / "ca.pem").write_text(pem)
        out = subprocess.run(
            [openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "ca.pem")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().split("=", 1)[1] == fingerprint(cert)


def test_tls_keys_round_trip_through_pem(ca, rsa2048, rsa1024):
    ca_key, _ = ca
    loaded = load_tls_private_key(private_key_to_pem(ca_key), "tls_key")
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == ca_key.private_numbers()
    assert isinstance(
        load_tls_private_key(private_key_to_pem(rsa2048), "tls_key"), rsa.RSAPrivateKey
    )
    with pytest.raises(ValidationError, match="is 1024 bits"):
        load_tls_private_key(private_key_to_pem(rsa1024), "tls_key")


def test_long_workspace_names_fit_in_the_common_name():
    key, cert = make_ca("w" * 200)
    make_server_certificate(key, cert, "w" * 200, [])
    assert len(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) == 64
