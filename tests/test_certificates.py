"""Client certificate verification and the SITHS identity read from it."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization

from scim.auth.certificates import (
    CertificateError,
    CertificateVerifier,
    from_client_cert_header,
    from_escaped_pem,
    load_chain,
)
from tests.pki import Authority

ROOT = Authority("SITHS Test Root")
INTERMEDIATE = Authority("SITHS Test Person CA", ROOT)
VERIFIER = CertificateVerifier(ROOT.pem)


def _der(certificate: object) -> str:
    encoded = certificate.public_bytes(serialization.Encoding.DER)  # type: ignore[attr-defined]
    return base64.b64encode(encoded).decode()


def test_a_person_certificate_gives_hsa_id_organisation_and_fingerprint() -> None:
    person = INTERMEDIATE.issue(
        "Anna Admin", hsa_id="SE2120000142-1234", organisation="Stockholms stad"
    )
    identity = VERIFIER.verify(person.certificate, [INTERMEDIATE.certificate])
    assert identity.hsa_id == "SE2120000142-1234"
    assert identity.organisation == "Stockholms stad"
    assert identity.common_name == "Anna Admin"
    assert identity.fingerprint == person.fingerprint


def test_a_certificate_naming_two_organisations_is_refused() -> None:
    two = INTERMEDIATE.issue(
        "Anna Admin", hsa_id="SE2120000142-1234", organisation=("Göteborgs stad", "Stockholms stad")
    )
    with pytest.raises(CertificateError, match="more than one organisation"):
        VERIFIER.verify(two.certificate, [INTERMEDIATE.certificate])


def test_a_certificate_without_subject_alt_name_or_eku_is_accepted() -> None:
    bare = INTERMEDIATE.issue("Bare", organisation="Stockholms stad", client_auth=None)
    assert VERIFIER.verify(bare.certificate, [INTERMEDIATE.certificate]).hsa_id is None


@pytest.mark.parametrize(
    ("issued", "intermediates", "reason"),
    [
        (INTERMEDIATE.issue("Old", hsa_id="SE2120000142-1", expired=True), True, "valid"),
        (INTERMEDIATE.issue("Mail only", hsa_id="SE2120000142-2", client_auth=False), True, "EKU"),
        (Authority("Other Root").issue("Evil", hsa_id="SE2120000142-3"), False, "candidates"),
        (INTERMEDIATE.issue("No chain", hsa_id="SE2120000142-4"), False, "candidates"),
    ],
    ids=["expired", "no-client-auth", "foreign-ca", "missing-intermediate"],
)
def test_untrusted_certificates_are_refused(
    issued: object, intermediates: bool, reason: str
) -> None:
    chain = [INTERMEDIATE.certificate] if intermediates else []
    with pytest.raises(CertificateError, match=reason):
        VERIFIER.verify(issued.certificate, chain)  # type: ignore[attr-defined]


def test_not_yet_valid_at_an_earlier_time() -> None:
    person = INTERMEDIATE.issue("Later", hsa_id="SE2120000142-5")
    with pytest.raises(CertificateError):
        VERIFIER.verify(
            person.certificate,
            [INTERMEDIATE.certificate],
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=400),
        )


def test_forwarded_forms_read_the_same_certificate() -> None:
    person = INTERMEDIATE.issue("Fwd", hsa_id="SE2120000142-6", organisation="Stockholms stad")
    pem_chain = person.pem + INTERMEDIATE.pem
    for leaf, chain in (
        load_chain(pem_chain),
        from_escaped_pem(quote(pem_chain.decode())),
        from_client_cert_header(
            f":{_der(person.certificate)}:", f":{_der(INTERMEDIATE.certificate)}:"
        ),
    ):
        assert leaf == person.certificate
        assert chain == [INTERMEDIATE.certificate]


@pytest.mark.parametrize(
    "value",
    ["", "not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"],
)
def test_garbage_in_pem_is_a_certificate_error(value: str) -> None:
    with pytest.raises(CertificateError):
        from_escaped_pem(quote(value))


@pytest.mark.parametrize("value", ["", "abc", ":not base64!:", "::", ":AAAA:"])
def test_garbage_in_client_cert_is_a_certificate_error(value: str) -> None:
    with pytest.raises(CertificateError):
        from_client_cert_header(value)
