"""Swedish organisation numbers and the kinds of organisation that are tenants: municipalities
(kommuner) and regions, each offered its own e-services."""

from __future__ import annotations

import re
from enum import StrEnum

_DIGITS = re.compile(r"[0-9]{10}", re.ASCII)


class Kind(StrEnum):
    kommun = "kommun"
    region = "region"


# The number series the two kinds are registered in.
PREFIXES = {Kind.kommun: "212000", Kind.region: "232100"}


def luhn_valid(digits: str) -> bool:
    """The check digit rule of Swedish organisation numbers (Luhn, weights 2-1 from the left)."""
    total = 0
    for index, char in enumerate(digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return total % 10 == 0


def normalise_org_number(value: str, kind: Kind | None = None) -> str:
    """``NNNNNN-NNNN`` or ``NNNNNNNNNN`` as ten digits; ValueError saying what is wrong."""
    digits = value.replace("-", "").strip()
    if not _DIGITS.fullmatch(digits):
        raise ValueError(f"{value!r} is not an organisation number: it must be 10 digits")
    if not luhn_valid(digits):
        raise ValueError(f"{value!r} has a wrong check digit")
    if kind is not None and not digits.startswith(PREFIXES[kind]):
        raise ValueError(
            f"{value!r} is not a {kind.value} number: they begin with {PREFIXES[kind]}"
        )
    return digits
