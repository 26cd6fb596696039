"""Synthetic but realistic Swedish organisations and staff, reproducible from a seed.

Names follow how Swedish names are built (patronymic -son names, nature-word compounds such as
Lindqvist or Sjöberg, and names of immigrant families), so that ``co`` and sorting see the
same spread of values as in a real directory; sizes of organisations are skewed, because one
region or large city holds a large share of all staff.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from extensions.organisations import PREFIXES, Kind, luhn_valid
from extensions.schema import GROUP_EXTENSION, USER_EXTENSION

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _words(text: str) -> list[str]:
    return text.split()


FEMALE = _words(
    "Anna Eva Maria Karin Sara Kristina Lena Emma Kerstin Ingrid Marie Malin Jenny Hanna "
    "Linnéa Annika Sofia Elin Ida Linda Susanne Johanna Elisabeth Monica Birgitta Ulla Åsa "
    "Camilla Helena Cecilia Frida Matilda Julia Alva Ebba Agnes Märta Signe Sigrid Britt "
    "Gunilla Ylva Therese Louise Amira Fatima Leyla Nour Mira"
)
MALE = _words(
    "Lars Mikael Anders Johan Erik Per Karl Peter Jan Thomas Daniel Fredrik Hans Bengt Nils "
    "Magnus Mats Andreas Björn Stefan Jonas Oskar Gustav Axel Emil Filip Viktor Göran Sven "
    "Åke Lennart Håkan Jörgen Ulf Olof Ahmed Mohammed Ali Hassan Omar Youssef Dragan Mehmet"
)
# Stems of -son names: Andersson, Olsson, Persson, Magnusson ...
PATRONYMS = _words(
    "Anders Johan Karl Nils Erik Lars Ol Pers Sven Gustaf Jons Magnu Hans Jakob Isak"
)
COMPOUND_FIRST = _words(
    "Lind Berg Sjö Ström Ek Holm Sand Lund Dahl Fors Gran Björk Hag Ny Sö Lil Åker Ängs "
    "Wall Hed Ros Blom Sved Norr Fager Häll Mal Kvarn Löv Ås"
)
COMPOUND_LAST = _words("qvist berg gren ström holm lund dahl blad man ling sten by fors mark hed")
OTHER_SURNAMES = _words(
    "Ali Mohammed Hussein Ahmed Nguyen Kaya Yilmaz Hassan Abdi Novak Kovačević Rahimi "
    "Haddad Popescu Nowak Virtanen Korhonen Müller Silva Rossi"
)
PLACE_FIRST = _words(
    "Ek Lind Berg Sjö Ström Gran Björk Sand Ny Bro Ås Mal Sol Vall Hag Torsh Öster Väster "
    "Norr Söder Kungs Häll Ed Fal Borg Mark Hjo Tran Upp Ängel"
)
PLACE_LAST = _words("by köping holm sjö vik hamn torp stad fors näs hult")

# E-mail local parts and domains are ASCII; the names themselves keep å, ä, ö and é.
_ASCII = str.maketrans("åäöéèüčÅÄÖÉÈÜČ", "aaoeeucAAOEEUC")


def _surname(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.45:
        stem = rng.choice(PATRONYMS)
        return stem + ("sson" if not stem.endswith("s") else "son")
    if draw < 0.9:
        return rng.choice(COMPOUND_FIRST) + rng.choice(COMPOUND_LAST)
    return rng.choice(OTHER_SURNAMES)


def surname_fragments(rng: random.Random, count: int) -> list[str]:
    """Lower-case substrings of surnames, as an administrator types them into a search box."""
    fragments: list[str] = []
    while len(fragments) < count:
        name = _surname(rng).lower()
        length = rng.choice((3, 4, 5))
        if len(name) > length:
            start = rng.randrange(len(name) - length + 1)
            fragments.append(name[start : start + length])
    return fragments


def org_number(kind: Kind, serial: int) -> str:
    """A valid organisation number in the series of ``kind``: prefix, serial, check digit."""
    body = f"{PREFIXES[kind]}{serial:03d}"
    return next(body + str(d) for d in range(10) if luhn_valid(body + str(d)))


SERVICES = {
    Kind.kommun: ["ansok-om-statlig-ersattning", "se-och-andra-ansvar-for-ensamkommande"],
    Kind.region: ["e-tjanst-for-landsting"],
}
# One permission a group grants, per e-service (ids from extensions/catalogue.toml).
GROUP_PERMISSIONS = {
    "ansok-om-statlig-ersattning": "grundersattning",
    "se-och-andra-ansvar-for-ensamkommande": "administrera-barn-utan-vardnadshavare",
    "e-tjanst-for-landsting": "se-asylsokande",
}


@dataclass
class Organisation:
    org_number: str
    name: str
    kind: Kind
    domain: str
    users: int
    services: list[str] = field(default_factory=list)


def organisations(count: int, total_users: int, seed: int = 1) -> list[Organisation]:
    """``count`` organisations (about one in fourteen a region) sharing ``total_users``.

    The first is the largest (a sixth of all users, like a big region); the rest follow a
    long tail, so that most organisations have a few thousand staff or fewer.
    """
    rng = random.Random(seed)
    places = [a + b.lower() for a in PLACE_FIRST for b in PLACE_LAST]
    rng.shuffle(places)
    weights = [1 / (rank + 2) ** 0.8 for rank in range(count - 1)]
    first = total_users // 6 if count > 1 else total_users
    rest = total_users - first
    sizes = [first] + [int(rest * w / sum(weights)) for w in weights]
    sizes[-1] += total_users - sum(sizes)
    result: list[Organisation] = []
    for index, size in enumerate(sizes):
        kind = Kind.region if index % 14 == 0 else Kind.kommun
        place = places[index % len(places)] + ("" if index < len(places) else str(index))
        name = f"Region {place}" if kind is Kind.region else f"{place} kommun"
        domain = ("region" if kind is Kind.region else "") + place.lower().translate(_ASCII)
        result.append(
            Organisation(
                org_number=org_number(kind, 100 + index),
                name=name,
                kind=kind,
                domain=f"{domain}.se",
                users=size,
                services=SERVICES[kind],
            )
        )
    return result


class People:
    """The staff of one organisation: userName and HSA-id unique, e-mail as people have them."""

    def __init__(self, organisation: Organisation, seed: int, extension: bool = True) -> None:
        self.organisation = organisation
        self.rng = random.Random(seed)
        self.extension = extension
        self.taken: set[str] = set()
        self.serial = 0

    def body(self, tag: str = "") -> dict[str, Any]:
        """A User as an identity system POSTs it (and as the server then stores it).

        ``tag`` goes into userName and HSA-id, to keep them unique across runs (load scripts
        replace a placeholder tag with a counter).
        """
        rng = self.rng
        given = rng.choice(FEMALE if rng.random() < 0.55 else MALE)
        family = _surname(rng)
        self.serial += 1
        local = f"{given}.{family}".lower().translate(_ASCII)
        if tag:
            local = f"{local}.{tag}"
        elif local in self.taken:
            local = f"{local}{self.serial}"
        self.taken.add(local)
        email = f"{local}@{self.organisation.domain}"
        document: dict[str, Any] = {
            "schemas": [USER_SCHEMA],
            "userName": email,
            "name": {"familyName": family, "givenName": given},
            "displayName": f"{given} {family}",
            "active": rng.random() > 0.03,
            "emails": [{"value": email, "type": "work", "primary": True}],
        }
        if self.extension:
            document["schemas"].append(USER_EXTENSION)
            suffix = tag.upper() if tag else f"{self.serial:X}"
            document[USER_EXTENSION] = {"hsaId": f"SE{self.organisation.org_number}-{suffix}"}
        return document

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for _ in range(self.organisation.users):
            yield self.body()


def big_group_size(users: int, wanted: int) -> int:
    """Members of the big group: ``wanted``, leaving at least half the users (at most 50,000)
    outside it for the case that adds members."""
    return max(0, min(wanted, users - min(users // 2, 50_000)))


GROUP_NAMES = (
    "Handläggare",
    "Socialsekreterare",
    "Ekonomi",
    "Skolhandläggare",
    "Granskare",
    "Attestanter",
)


def group_body(organisation: Organisation, index: int) -> dict[str, Any]:
    """A group granting one permission of one of the organisation's e-services."""
    service = organisation.services[index % len(organisation.services)]
    name = GROUP_NAMES[index % len(GROUP_NAMES)]
    return {
        "schemas": [GROUP_SCHEMA, GROUP_EXTENSION],
        "displayName": f"{name} {index + 1}" if index >= len(GROUP_NAMES) else name,
        GROUP_EXTENSION: {"permissions": [{"value": f"{service}:{GROUP_PERMISSIONS[service]}"}]},
    }
