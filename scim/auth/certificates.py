"""Client certificates: chain verification and the SITHS identity they carry.

SITHS certificates carry the HSA-id in the subject ``serialNumber`` (2.5.4.5) and the
organisation name in ``O``. Verification uses ``cryptography``'s X.509 client verifier:
the chain must lead to a configured CA, every certificate must be valid now, and a leaf
with an extended key usage must allow client authentication.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)


class CertificateError(Exception):
    """The certificate could not be read or verified; the message says why."""


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """What a verified client certificate says about its holder."""

    hsa_id: str | None
    organisation: str | None
    common_name: str | None
    fingerprint: str  # SHA-256 of the DER encoding, lower-case hex


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str | None:
    """The one value of an attribute of the subject, or None; a second one would leave which
    to believe to chance, so it makes the certificate unusable."""
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    if len(values) > 1:
        raise CertificateError(f"The client certificate names more than one {what}")
    value = values[0].value
    return value.decode() if isinstance(value, bytes) else str(value)


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


class CertificateVerifier:
    """Verifies client certificate chains against a CA bundle."""

    def __init__(self, ca_bundle: bytes) -> None:
        roots = x509.load_pem_x509_certificates(ca_bundle)
        if not roots:
            raise ValueError("The CA bundle holds no certificate")
        self._store = Store(roots)
        # SITHS person certificates need not carry a subjectAltName.
        self._leaf_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )

    def verify(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        *,
        now: dt.datetime | None = None,
    ) -> CertificateIdentity:
        builder = (
            PolicyBuilder()
            .store(self._store)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=self._leaf_policy
            )
        )
        if now is not None:
            builder = builder.time(now)
        try:
            builder.build_client_verifier().verify(leaf, intermediates)
        except VerificationError as error:
            raise CertificateError(f"The client certificate is not trusted: {error}") from error
        subject = leaf.subject
        return CertificateIdentity(
            hsa_id=_attribute(subject, NameOID.SERIAL_NUMBER, "serialNumber"),
            organisation=_attribute(subject, NameOID.ORGANIZATION_NAME, "organisation (O)"),
            common_name=_attribute(subject, NameOID.COMMON_NAME, "common name (CN)"),
            fingerprint=fingerprint(leaf),
        )


def load_chain(pem: bytes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """A leaf and its intermediates from concatenated PEM."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise CertificateError("The client certificate is not valid PEM") from error
    if not certificates:
        raise CertificateError("No client certificate was presented")
    return certificates[0], certificates[1:]


def from_der_chain(chain: list[bytes]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """A leaf and its intermediates from DER (the ASGI TLS extension's form)."""
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as error:
        raise CertificateError("The client certificate is not valid DER") from error
    if not certificates:
        raise CertificateError("No client certificate was presented")
    return certificates[0], certificates[1:]


def _byte_sequence(item: str) -> bytes:
    """RFC 8941 §3.3.5: ``:base64:``."""
    item = item.strip()
    if len(item) < 2 or not (item.startswith(":") and item.endswith(":")):
        raise CertificateError("Client-Cert is not a structured-field byte sequence")
    try:
        return base64.b64decode(item[1:-1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise CertificateError("Client-Cert is not valid base64") from error


def from_client_cert_header(
    value: str, chain_value: str | None = None
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """RFC 9440 ``Client-Cert`` (and ``Client-Cert-Chain``) as a proxy forwards them."""
    chain = [_byte_sequence(value)]
    if chain_value:
        chain.extend(_byte_sequence(item) for item in chain_value.split(","))
    return from_der_chain(chain)


def from_escaped_pem(value: str) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """nginx's ``$ssl_client_escaped_cert``: URL-escaped PEM."""
    return load_chain(unquote(value).encode())
