"""A test PKI made with ``cryptography``: a root, an intermediate, and SITHS-like leaves.

SITHS puts the HSA-id in the subject ``serialNumber`` (2.5.4.5) and the organisation in ``O``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


def _name(
    common_name: str, organisation: str | tuple[str, ...] | None = None, serial: str | None = None
) -> x509.Name:
    """A subject; ``organisation`` may be several (an O attribute each), as no SITHS card is."""
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "SE")]
    organisations = (organisation,) if isinstance(organisation, str) else organisation or ()
    for name in organisations:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, name))
    if serial:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


@dataclass
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """The certificate (with its intermediates) and key as PEM files, for TLS clients."""
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(
            self.pem + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        )
        key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


class Authority:
    """A CA that can issue intermediates and leaves."""

    def __init__(self, name: str, parent: Authority | None = None) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name, "Test PKI")
        issuer_key = parent.key if parent else self.key
        issuer_name = parent.certificate.subject if parent else subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), False)
        )
        if parent:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), False
            )
        self.certificate = builder.sign(issuer_key, hashes.SHA256())
        self.chain = [self.certificate, *parent.chain[:-1]] if parent else []
        self.parent = parent

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        hsa_id: str | None = None,
        organisation: str | tuple[str, ...] | None = None,
        client_auth: bool | None = True,
        server_names: list[str] | None = None,
        ip_addresses: list[str] | None = None,
        expired: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = NOW - dt.timedelta(days=1) if expired else NOW + dt.timedelta(days=365)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organisation, hsa_id))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=30))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in server_names or []]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
        if hsa_id:
            sans.append(x509.RFC822Name(f"{hsa_id.lower()}@siths.test"))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if client_auth is not None:
            server = bool(server_names or ip_addresses)
            usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
            if client_auth:
                usage.append(ExtendedKeyUsageOID.CLIENT_AUTH)
            elif not usage:
                usage.append(ExtendedKeyUsageOID.EMAIL_PROTECTION)
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        chain = [self.certificate] if self.parent else []
        return Issued(certificate, key, chain)
