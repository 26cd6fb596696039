"""HSA-ids, the ids of the Swedish health and social care directory that SITHS certificates
carry in their subject serialNumber."""

from __future__ import annotations

import re

_HSA_ID = re.compile(r"SE[0-9]{10}-[A-Z0-9]+", re.ASCII)


def normalise_hsa_id(value: str) -> str:
    """An HSA-id: ``SE``, the ten-digit number of the directory owner, ``-``, letters or digits;
    at most 31 characters. Upper case; ValueError saying what is wrong."""
    candidate = value.strip().upper()
    if len(candidate) > 31:
        raise ValueError(f"{value!r} is not an HSA-id: at most 31 characters")
    if not _HSA_ID.fullmatch(candidate):
        raise ValueError(
            f"{value!r} is not an HSA-id: SE, ten digits, a hyphen, then letters or digits"
        )
    return candidate
