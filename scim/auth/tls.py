"""Direct TLS: hand the client certificate uvicorn verified to the app.

uvicorn checks client certificates during the TLS handshake (``ssl_cert_reqs``,
``ssl_ca_certs``) but does not put them in the ASGI scope. :class:`TLSHttpToolsProtocol` adds
the ASGI TLS extension (https://asgi.readthedocs.io/en/latest/specs/tls.html) to every request
on a TLS connection, which :mod:`scim.auth.authenticate` reads.

Python 3.11 and 3.12 expose only the peer's leaf certificate, so ``client_cert_chain`` holds
just the leaf there and the intermediate CAs must be in the app's CA bundle
(``SCIM_CA_BUNDLE``). From Python 3.13 the chain the client sent is passed on as well.
``server_cert`` is ``None``: Python's ``ssl`` does not expose a server's own certificate.
"""

from __future__ import annotations

import asyncio
import ssl

from cryptography import x509

from scim.api.wire import HttpProtocol

# TLS protocol version numbers (RFC 8446 §4.2.1) by the names ``SSLObject.version()`` gives.
_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The DER certificates the client sent, leaf first (only the leaf before Python 3.13)."""
    unverified_chain = getattr(ssl_object, "get_unverified_chain", None)
    if unverified_chain is not None:
        chain: list[bytes] = [bytes(der) for der in unverified_chain() or []]
        return chain
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _cipher_suite(ssl_object: ssl.SSLObject) -> int | None:
    """The IANA number of the negotiated cipher suite (OpenSSL ids are 0x0300XXXX)."""
    cipher = ssl_object.cipher()
    if cipher is None:
        return None
    for candidate in ssl_object.context.get_ciphers():
        if candidate["name"] == cipher[0]:
            suite: int = candidate["id"] & 0xFFFF
            return suite
    return None


def tls_extension(ssl_object: ssl.SSLObject) -> dict[object, object]:
    """``scope["extensions"]["tls"]`` for a connection whose handshake is complete."""
    chain = _peer_chain(ssl_object)
    name = x509.load_der_x509_certificate(chain[0]).subject.rfc4514_string() if chain else None
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain],
        "client_cert_name": name,
        # A certificate that fails verification ends the handshake; none gets this far.
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_suite(ssl_object),
    }


class TLSHttpToolsProtocol(HttpProtocol):
    """The server's HTTP protocol, adding the ASGI TLS extension on TLS connections."""

    tls: dict[object, object] | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        # The transport reports the connection once the handshake is done, so the peer
        # certificate is known now; it is the same for every request on the connection.
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        self.tls = tls_extension(ssl_object) if ssl_object is not None else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.tls is not None:
            extensions = self.scope.setdefault("extensions", {})
            extensions["tls"] = dict(self.tls)
