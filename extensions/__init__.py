"""The agency's e-service domain on the SCIM engine: the extension schemas (``schema``),
HSA-ids (``hsa``), organisations and their kinds (``organisations``), the catalogue of
e-services and permissions (``catalogue``, ``catalogue.toml``), the grant and
effective-permission rules (``rules``), their place on the engine's interface (``hooks``),
``GET /catalogue`` (``api``) and the demo data (``demo``)."""

from __future__ import annotations

from extensions.hooks import EServices

__all__ = ["EServices"]
