"""When two strings are the same where case does not count (RFC 7643 §2.1, ``caseExact``
false): as people read them, not as their code points differ."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """The form of ``text`` that unique keys and case-insensitive searches compare.

    Compatibility normalisation, then case folding, then normalisation again (the caseless
    match of Unicode §3.13, as RFC 8265 §3.3 prepares user names): NFC and NFD spellings
    of "åsa" are one name, as are "straße" and "STRASSE", full-width "admin" (U+FF41…) and
    "admin", "ﬁle" and "FILE". What is stored is the value as sent; only keys are folded.
    """
    if text.isascii():
        # Already NFKC; for ASCII, case folding is lowering.
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
