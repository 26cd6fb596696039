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


# Swedish alphabetical order (SAOL, and Svenska skrivregler): å, ä, ö after z in that order;
# æ with ä, ø with ö, ü with y; other accented letters as their base letter (é as e).
# In the key they become the three characters after "z" in code point order.
_SWEDISH_LETTERS = str.maketrans({"å": "{", "ä": "|", "æ": "|", "ö": "}", "ø": "}", "ü": "y"})


def sort_key(text: str) -> str:
    """The key by which names sort in Swedish order, case-insensitively, when compared code
    point by code point (as both databases compare ``sort_key`` columns, and their indexes
    hold them): "Zoran", "Åsa", "Ängel", "Örjan"."""
    folded = fold(text)
    if folded.isascii():
        return folded
    lettered = folded.translate(_SWEDISH_LETTERS)
    bare = "".join(
        c for c in unicodedata.normalize("NFD", lettered) if not unicodedata.combining(c)
    )
    return unicodedata.normalize("NFC", bare)
