"""The agency's e-service domain on the SCIM engine: the extension schemas (``schema``),
HSA-ids (``hsa``), organisations and their kinds (``organisations``), the catalogue of
e-services and permissions (``catalogue``, ``catalogue.toml``), the grant and
effective-permission rules (``rules``), their place on the engine's interface (``hooks``),
``GET /catalogue`` (``api``) and the demo data (``demo``)."""

from __future__ import annotations

from extensions.catalogue import load_configured
from extensions.hooks import EServices
from scim.settings import Settings


def install(settings: Settings) -> EServices:
    """The domain as the app factory installs it, with the configured catalogue."""
    return EServices(load_configured(settings))
