"""Organisation numbers and HSA-ids."""

from __future__ import annotations

import pytest

from extensions.hsa import normalise_hsa_id
from extensions.organisations import Kind, luhn_valid, normalise_org_number


@pytest.mark.parametrize(
    "number", ["2120000142", "212000-0142", "2120001355", "2321000016", "2321000206"]
)
def test_valid_organisation_numbers(number: str) -> None:
    assert normalise_org_number(number) == number.replace("-", "")


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("2120000143", "check digit"),
        ("212000014", "10 digits"),
        ("21200001420", "10 digits"),
        ("21200OO142", "10 digits"),
        ("", "10 digits"),
        # Digits of other scripts are digits to Python's \d, not to the registry.
        ("\uff12\uff11\uff12\uff10\uff10\uff10\uff10\uff11\uff14\uff12", "10 digits"),
        ("212000\u0661\u0664\u0662", "10 digits"),
    ],
)
def test_invalid_organisation_numbers_say_why(number: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_org_number(number)


def test_kind_must_match_the_number_series() -> None:
    assert normalise_org_number("2120000142", Kind.kommun) == "2120000142"
    assert normalise_org_number("2321000016", Kind.region) == "2321000016"
    with pytest.raises(ValueError, match="232100"):
        normalise_org_number("2120000142", Kind.region)
    with pytest.raises(ValueError, match="212000"):
        normalise_org_number("2321000016", Kind.kommun)


def test_luhn() -> None:
    assert luhn_valid("5560360793")  # a well-known Swedish company number
    assert not luhn_valid("5560360794")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SE2321000016-4HK5", "SE2321000016-4HK5"),
        ("se2120000142-abc1", "SE2120000142-ABC1"),
        (" SE2120000142-1 ", "SE2120000142-1"),
    ],
)
def test_valid_hsa_ids(value: str, expected: str) -> None:
    assert normalise_hsa_id(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("SE232100001-4HK5", "ten digits"),
        ("2321000016-4HK5", "ten digits"),
        ("SE2321000016", "ten digits"),
        ("SE2321000016-", "ten digits"),
        ("SE2321000016-4H K5", "ten digits"),
        # Full-width and Arabic-Indic digits look like, or stand for, the ASCII ones.
        ("SE\uff12\uff13\uff12\uff11000016-4HK5", "ten digits"),
        ("SE2321000016-\u0664HK5", "ten digits"),
        ("SE232100001\u0666-4HK5", "ten digits"),
        ("SE2321000016-" + "A" * 20, "31 characters"),
    ],
)
def test_invalid_hsa_ids_say_why(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_hsa_id(value)
