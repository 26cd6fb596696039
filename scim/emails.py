"""E-mail addresses (a User's ``emails.value``), validated as pydantic's ``EmailStr`` by their
syntax alone (RFC 5321/5322), not by whether the domain is one the Internet delivers to.

pydantic hands every address to email_validator, whose Unicode, IDNA and reserved-name checks
cost about 40 µs an address: a tenth of what creating a user costs in a Bulk request. Nearly
every address an organisation's directory holds is plain ASCII, ``anna.ek@kommun.se``. For
those a pattern answers first, one that admits only addresses email_validator accepts
*unchanged*; any other address goes to pydantic's validation as before. ``tests/test_emails.py``
checks the shortcut against email_validator over generated addresses.
"""

from __future__ import annotations

import re
from typing import Any

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import EmailStr, GetCoreSchemaHandler
from pydantic.networks import validate_email
from pydantic_core import core_schema

# An identity system sends the addresses its directory holds, and directories hold addresses
# on intranet and special-use domains (Okta's own examples use "okta.local"). Any address
# valid by RFC 5321/5322 syntax is taken: email_validator's documented switches turn its
# deliverability rules off (for this process: pydantic's EmailStr here uses them too).
email_validator.GLOBALLY_DELIVERABLE = False
email_validator.SPECIAL_USE_DOMAIN_NAMES[:] = []

# RFC 5322 §3.2.3 dot-atom of ASCII atext (at most 64 characters, RFC 5321 §4.5.3.1.1), then
# lower-case LDH labels of at most 63 characters (RFC 1035 §2.3.1) ending in an alphabetic
# top-level label. Upper case in the domain, "--" (Punycode and reserved R-LDH labels) and
# anything else go to email_validator, which may normalise them.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(rf"(?=[^@]{{1,64}}@)({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[a-z]{{2,63}})")
# RFC 5321 §4.5.3.1.3 as email_validator applies it: the whole address.
_MAX_LENGTH = 254
# Local parts that email_validator folds to lower case (RFC 2142).
_FOLDED = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def plain(address: str) -> bool:
    """Whether ``address`` is one that email_validator accepts as it is."""
    if len(address) > _MAX_LENGTH:
        return False
    match = _PLAIN.fullmatch(address)
    if match is None:
        return False
    local, domain = match.groups()
    return "--" not in domain and local.lower() not in _FOLDED


def normalised(address: str) -> str:
    """The address as ``EmailStr`` gives it, or pydantic's error."""
    return address if plain(address) else validate_email(address)[1]


class EmailAddress(EmailStr):
    """``EmailStr`` (format ``email`` in JSON Schema), with the shortcut for plain addresses."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(normalised, core_schema.str_schema())
