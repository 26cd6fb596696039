"""The e-service catalogue: the packaged file's content and ids, the checks on a broken file,
and what may be granted to whom."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import pytest

from extensions.catalogue import (
    Catalogue,
    CatalogueError,
    EService,
    Permission,
    PermissionGroup,
    load,
)
from extensions.demo import ORGANISATIONS
from extensions.organisations import Kind

PACKAGED = Path(__file__).resolve().parents[2] / "extensions" / "catalogue.toml"

ANSOK = "ansok-om-statlig-ersattning"
ANSVAR = "se-och-andra-ansvar-for-ensamkommande"
LANDSTING = "e-tjanst-for-landsting"

# The manual's names use an en dash, which a hyphen would look like here.
DASH = "\N{EN DASH}"

# service id -> (name, kind, [(group name, [(permission id, permission name)])]): what the
# administrators' manual names. The ids are pinned: they are stored with grants and
# agreements and must never change. The file may list more; it may not list less.
EXPECTED: dict[str, tuple[str, Kind, list[tuple[str | None, list[tuple[str, str]]]]]] = {
    ANSOK: (
        "Ansök om statlig ersättning",
        Kind.kommun,
        [
            (
                "Ersättningar som ansöks",
                [
                    (
                        "ankomstboende-ensamkommande-barn",
                        "Ankomstboende för asylsökande ensamkommande barn",
                    ),
                    ("asylsokande-i-forskola", "Asylsökande i förskola"),
                    ("asylsokande-i-forskoleklass", "Asylsökande i förskoleklass"),
                    ("asylsokande-i-grundskola", "Asylsökande i grundskola"),
                    ("asylsokande-i-gymnasieskola", "Asylsökande i gymnasieskola"),
                    (
                        "ekonomiskt-bistand-nyanlanda-sjuka-funktionshindrade",
                        "Ekonomiskt bistånd för nyanlända sjuka och funktionshindrade",
                    ),
                    (
                        "extraordinara-kostnader-elev-sarskilt-behov",
                        "Extraordinära kostnader för asylsökande enskild elev med särskilt behov",
                    ),
                    ("hemtjanst-for-nyanlanda", "Hemtjänst för nyanlända"),
                    (
                        "halso-och-sjukvard-for-nyanlanda",
                        "Stödsatser för hälso- och sjukvård för nyanlända",
                    ),
                    (
                        "vardkostnader-lvu-ensamkommande-barn",
                        "Vårdkostnader enligt LVU eller motsvarande för asylsökande "
                        "ensamkommande barn",
                    ),
                    (
                        "vardkostnader-lvu-unga",
                        "Vårdkostnader enligt LVU eller motsvarande för asylsökande unga",
                    ),
                    (
                        "vardkostnader-barn-med-vardnadshavare",
                        "Vårdkostnader för asylsökande barn med vårdnadshavare i Sverige",
                    ),
                ],
            ),
            (
                "Ersättningar som betalas ut utan ansökan (så kallade schablonersättningar)",
                [
                    ("schablon-52000-kr-asyl", f"Anvisningskostnaden à 52 000 kr {DASH} Asyl"),
                    ("grundersattning", "Grundersättning"),
                    ("arlig-ersattning-fast", f"Årlig ersättning {DASH} fast"),
                    ("arlig-ersattning-rorlig", f"Årlig ersättning {DASH} rörlig"),
                ],
            ),
        ],
    ),
    ANSVAR: (
        "Se och ändra ansvar för ensamkommande",
        Kind.kommun,
        [
            (
                None,
                [
                    (
                        "administrera-barn-utan-vardnadshavare",
                        "Administrera barn utan vårdnadshavare",
                    )
                ],
            )
        ],
    ),
    LANDSTING: (
        "E-tjänst för landsting",
        Kind.region,
        [
            (
                None,
                [
                    ("rapportera-halsoundersokning", "Rapportera hälsoundersökning"),
                    ("se-asylsokande", "Se asylsökande"),
                    ("skapa-ny-ansokan-om-ersattning", "Skapa ny ansökan om ersättning"),
                    ("skicka-in-ansokan-om-ersattning", "Skicka in ansökan om ersättning"),
                ],
            )
        ],
    ),
}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load()


# -- the packaged file --------------------------------------------------------------------


def test_the_packaged_file_loads_by_default_and_by_path(catalogue: Catalogue) -> None:
    assert isinstance(catalogue, Catalogue)
    assert load(PACKAGED) == catalogue


def test_every_pinned_service_and_permission_is_still_listed(catalogue: Catalogue) -> None:
    for service_id, (name, kind, groups) in EXPECTED.items():
        service = catalogue.service(service_id)
        assert service is not None, service_id
        assert service.name == name
        assert service.offered_to is kind
        listed = {group.name: group for group in service.groups}
        for group_name, permissions in groups:
            assert group_name in listed, (service_id, group_name)
            present = {(p.id, p.name) for p in listed[group_name].permissions}
            assert set(permissions) <= present, (service_id, group_name)


def test_every_entry_has_a_name_and_a_description(catalogue: Catalogue) -> None:
    for service in catalogue.services:
        assert service.name.strip() and service.description.strip(), service.id
        assert [group.name for group in service.groups if group.name is not None] == [
            group.name.strip() for group in service.groups if group.name is not None
        ]
        for permission in service.permissions:
            assert permission.name.strip(), (service.id, permission.id)


def test_the_descriptions(catalogue: Catalogue) -> None:
    landsting = catalogue.service(LANDSTING)
    assert landsting is not None
    assert landsting.description == (
        "I tjänsten för landsting så kan du söka ersättning för hälsoundersökningar "
        "och se vilka asylsökande som finns i länet."
    )
    for service_id in (ANSOK, ANSVAR):
        service = catalogue.service(service_id)
        assert service is not None and service.description.startswith("Kommunen ")


def test_the_pinned_permissions_are_current(catalogue: Catalogue) -> None:
    """What the manual names can be granted; a retired one carries a date only if retired."""
    for service_id, (_, _, groups) in EXPECTED.items():
        for _, permissions in groups:
            for permission_id, name in permissions:
                assert catalogue.permission(service_id, permission_id) == Permission(
                    permission_id, name
                )
    for service in catalogue.services:
        for permission in service.permissions:
            assert permission.retired or permission.retired_on is None


def test_ids_are_unique_slugs(catalogue: Catalogue) -> None:
    slug = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
    service_ids = [service.id for service in catalogue.services]
    assert len(set(service_ids)) == len(service_ids)
    for service in catalogue.services:
        ids = [permission.id for permission in service.permissions]
        assert len(set(ids)) == len(ids)
        for identifier in [service.id, *ids]:
            assert slug.fullmatch(identifier) and len(identifier) <= 64, identifier


def test_the_demo_agreements_are_catalogue_services(catalogue: Catalogue) -> None:
    for organisation in ORGANISATIONS:
        for service_id in organisation["services"]:
            service = catalogue.service(service_id)
            assert service is not None, service_id
            assert service.offered_to == organisation["kind"]


# -- look-ups -----------------------------------------------------------------------------


def test_service_and_permission_look_ups(catalogue: Catalogue) -> None:
    service = catalogue.service(LANDSTING)
    assert isinstance(service, EService) and service.name == "E-tjänst för landsting"
    assert catalogue.service("no-such-service") is None
    assert catalogue.permission(ANSOK, "grundersattning") == Permission(
        "grundersattning", "Grundersättning"
    )
    assert catalogue.permission(ANSOK, "se-asylsokande") is None  # a region permission
    assert catalogue.permission("no-such-service", "grundersattning") is None


def test_services_for_each_kind(catalogue: Catalogue) -> None:
    for kind in Kind:
        offered = [s.id for s in catalogue.services_for(kind)]
        assert offered == [s.id for s in catalogue.services if s.offered_to == kind]
    assert {ANSOK, ANSVAR} <= {s.id for s in catalogue.services_for(Kind.kommun)}
    assert LANDSTING in {s.id for s in catalogue.services_for(Kind.region)}


def test_the_model_is_frozen(catalogue: Catalogue) -> None:
    service = catalogue.services[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        service.name = "Ändrad"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        service.groups[0].permissions[0].retired = True  # type: ignore[misc]


# -- grantable ----------------------------------------------------------------------------

RETIRED = """
[[service]]
id = "tjanst"
name = "Tjänst"
description = "En tjänst."
offered_to = "kommun"

[[service.permission]]
id = "aktiv"
name = "Aktiv"

[[service.permission]]
id = "gammal"
name = "Gammal"
retired = true
retired_on = 2025-06-30

[[service.permission]]
id = "aldre"
name = "Äldre"
retired = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_grantable_when_offered_agreed_and_current(catalogue: Catalogue) -> None:
    assert catalogue.grantable(ANSOK, "grundersattning", Kind.kommun, {ANSOK}) is None
    assert catalogue.grantable(LANDSTING, "se-asylsokande", Kind.region, {LANDSTING}) is None


@pytest.mark.parametrize(
    ("service_id", "permission_id", "kind", "agreements", "reason"),
    [
        ("ansok", "grundersattning", Kind.kommun, {ANSOK}, "unknown e-service 'ansok'"),
        (
            ANSOK,
            "se-asylsokande",
            Kind.kommun,
            {ANSOK},
            f"e-service {ANSOK!r} has no permission 'se-asylsokande'",
        ),
        (
            LANDSTING,
            "se-asylsokande",
            Kind.kommun,
            {LANDSTING},
            f"e-service {LANDSTING!r} is offered to region, not to kommun",
        ),
        (
            ANSOK,
            "grundersattning",
            Kind.region,
            {ANSOK},
            f"e-service {ANSOK!r} is offered to kommun, not to region",
        ),
        (
            ANSVAR,
            "administrera-barn-utan-vardnadshavare",
            Kind.kommun,
            {ANSOK},
            f"the organisation has no agreement for e-service {ANSVAR!r}",
        ),
        (
            ANSOK,
            "grundersattning",
            Kind.kommun,
            set(),
            f"the organisation has no agreement for e-service {ANSOK!r}",
        ),
    ],
)
def test_grantable_says_why_not(
    catalogue: Catalogue,
    service_id: str,
    permission_id: str,
    kind: Kind,
    agreements: set[str],
    reason: str,
) -> None:
    assert catalogue.grantable(service_id, permission_id, kind, agreements) == reason


def test_a_retired_permission_is_not_grantable_but_stays_listed(tmp_path: Path) -> None:
    catalogue = load(write(tmp_path, RETIRED))
    assert catalogue.grantable("tjanst", "aktiv", Kind.kommun, {"tjanst"}) is None
    assert (
        catalogue.grantable("tjanst", "gammal", Kind.kommun, {"tjanst"})
        == "permission 'gammal' of e-service 'tjanst' is retired since 2025-06-30"
    )
    assert (
        catalogue.grantable("tjanst", "aldre", Kind.kommun, {"tjanst"})
        == "permission 'aldre' of e-service 'tjanst' is retired"
    )
    assert catalogue.permission("tjanst", "gammal") == Permission(
        "gammal", "Gammal", retired=True, retired_on=date(2025, 6, 30)
    )
    service = catalogue.service("tjanst")
    assert service is not None
    assert service.groups == (
        PermissionGroup(
            None,
            (
                Permission("aktiv", "Aktiv"),
                Permission("gammal", "Gammal", True, date(2025, 6, 30)),
                Permission("aldre", "Äldre", True),
            ),
        ),
    )


def test_the_catalogue_reasons_come_before_the_organisation_reasons(tmp_path: Path) -> None:
    catalogue = load(write(tmp_path, RETIRED))
    reason = catalogue.grantable("tjanst", "gammal", Kind.region, set())
    assert reason is not None and "retired" in reason


# -- as_json ------------------------------------------------------------------------------


def test_as_json_shape(catalogue: Catalogue) -> None:
    view = catalogue.as_json()
    assert json.loads(json.dumps(view)) == view
    assert list(view) == ["services"]
    assert [s["id"] for s in view["services"]] == [s.id for s in catalogue.services]
    for shown, service in zip(view["services"], catalogue.services, strict=True):
        assert shown == {
            "id": service.id,
            "name": service.name,
            "description": service.description,
            "offeredTo": service.offered_to.value,
            "groups": [
                {
                    "name": group.name,
                    "permissions": [
                        {
                            "id": p.id,
                            "name": p.name,
                            "retired": p.retired,
                            "retiredOn": p.retired_on.isoformat() if p.retired_on else None,
                        }
                        for p in group.permissions
                    ],
                }
                for group in service.groups
            ],
        }
    ansok = next(s for s in view["services"] if s["id"] == ANSOK)
    assert ansok["name"] == "Ansök om statlig ersättning" and ansok["offeredTo"] == "kommun"
    assert [g["name"] for g in ansok["groups"]][:2] == [
        "Ersättningar som ansöks",
        "Ersättningar som betalas ut utan ansökan (så kallade schablonersättningar)",
    ]


def test_as_json_shows_retirement_and_cannot_change_the_catalogue(tmp_path: Path) -> None:
    catalogue = load(write(tmp_path, RETIRED))
    view = catalogue.as_json()
    permissions = view["services"][0]["groups"][0]["permissions"]
    assert [(p["id"], p["retired"], p["retiredOn"]) for p in permissions] == [
        ("aktiv", False, None),
        ("gammal", True, "2025-06-30"),
        ("aldre", True, None),
    ]
    permissions[0]["retired"] = True
    view["services"].clear()
    assert catalogue.as_json()["services"][0]["groups"][0]["permissions"][0]["retired"] is False


# -- a broken file ------------------------------------------------------------------------

SERVICE = """
[[service]]
id = "{id}"
name = "Tjänst"
description = "En tjänst."
offered_to = "kommun"
"""

PERMISSION = """
[[service.permission]]
id = "{id}"
name = "Behörighet"
"""

GROUP_PERMISSION = PERMISSION.replace("[[service.permission]]", "[[service.group.permission]]")


def service(service_id: str = "tjanst", *permission_ids: str) -> str:
    return SERVICE.format(id=service_id) + "".join(
        PERMISSION.format(id=permission_id) for permission_id in permission_ids or ("p",)
    )


BROKEN: list[tuple[str, str, str]] = [
    (
        "duplicate service id",
        service("tjanst") + service("tjanst"),
        "duplicate service id 'tjanst'",
    ),
    (
        "duplicate permission id",
        service("tjanst", "a", "b", "a"),
        "service 'tjanst': duplicate permission id 'a'",
    ),
    (
        "duplicate permission id across groups",
        SERVICE.format(id="tjanst")
        + '[[service.group]]\nname = "Ett"\n'
        + GROUP_PERMISSION.format(id="a")
        + '[[service.group]]\nname = "Två"\n'
        + GROUP_PERMISSION.format(id="a"),
        "service 'tjanst': duplicate permission id 'a'",
    ),
    (
        "duplicate group name",
        SERVICE.format(id="tjanst")
        + '[[service.group]]\nname = "Ett"\n'
        + GROUP_PERMISSION.format(id="a")
        + '[[service.group]]\nname = "Ett"\n'
        + GROUP_PERMISSION.format(id="b"),
        "service 'tjanst': duplicate group name 'Ett'",
    ),
    (
        "unknown kind",
        service().replace('"kommun"', '"landsting"'),
        "service 'tjanst': unknown kind 'landsting' in offered_to; one of kommun, region",
    ),
    (
        "missing kind",
        service().replace('offered_to = "kommun"', ""),
        "service 'tjanst': offered_to is missing",
    ),
    (
        "empty service name",
        service().replace('name = "Tjänst"', 'name = "  "'),
        "service 'tjanst': name must not be empty",
    ),
    (
        "empty description",
        service().replace('"En tjänst."', '""'),
        "service 'tjanst': description must not be empty",
    ),
    (
        "missing description",
        service().replace('description = "En tjänst."', ""),
        "service 'tjanst': description is missing",
    ),
    (
        "empty permission name",
        service().replace('name = "Behörighet"', 'name = ""'),
        "service 'tjanst', permission 'p': name must not be empty",
    ),
    (
        "empty group name",
        SERVICE.format(id="tjanst")
        + '[[service.group]]\nname = ""\n'
        + GROUP_PERMISSION.format(id="a"),
        "service 'tjanst', group 1: name must not be empty",
    ),
    (
        "name not a string",
        service().replace('name = "Behörighet"', "name = 7"),
        "service 'tjanst', permission 'p': name must be a string, not 7",
    ),
    ("missing service id", service().replace('id = "tjanst"', ""), "service 1: id is missing"),
    ("id not a string", service().replace('"tjanst"', "5"), "service 1: id must be a string"),
    ("upper-case service id", service("Tjanst"), "service 1: malformed id 'Tjanst'"),
    ("non-ASCII service id", service("ansök"), "service 1: malformed id 'ansök'"),
    ("underscore in id", service("tjanst", "en_behorighet"), "malformed id 'en_behorighet'"),
    ("double hyphen in id", service("tjanst", "en--behorighet"), "malformed id 'en--behorighet'"),
    ("leading hyphen in id", service("tjanst", "-a"), "malformed id '-a'"),
    ("trailing hyphen in id", service("tjanst", "a-"), "malformed id 'a-'"),
    ("space around id", service(" tjanst"), "service 1: malformed id ' tjanst'"),
    ("trailing newline in id", service("tjanst\\n"), "service 1: malformed id 'tjanst\\n'"),
    ("id too long", service("t" * 65), "at most 64 characters"),
    ("unknown top-level key", "version = 1\n" + service(), "the file: unknown key 'version'"),
    (
        "unknown service key",
        service().replace('offered_to = "kommun"', 'offered_to = "kommun"\nofferedTo = "kommun"'),
        "service 'tjanst': unknown key 'offeredTo'; allowed: description, group, id, name,",
    ),
    (
        "unknown group key",
        SERVICE.format(id="tjanst")
        + '[[service.group]]\nname = "Ett"\nsort = 1\n'
        + GROUP_PERMISSION.format(id="a"),
        "service 'tjanst', group 1: unknown key 'sort'",
    ),
    (
        "unknown permission key",
        service() + "retierd = true\n",
        "service 'tjanst', permission 'p': unknown key 'retierd'",
    ),
    (
        "retired_on without retired",
        service() + "retired_on = 2025-01-01\n",
        "service 'tjanst', permission 'p': retired_on is set but retired is not true",
    ),
    (
        "retired_on with retired = false",
        service() + "retired = false\nretired_on = 2025-01-01\n",
        "retired_on is set but retired is not true",
    ),
    (
        "retired_on as a string",
        service() + 'retired = true\nretired_on = "2025-01-01"\n',
        "retired_on must be a TOML date such as 2026-01-01, not '2025-01-01'",
    ),
    (
        "retired_on as a date-time",
        service() + "retired = true\nretired_on = 2025-01-01T12:00:00\n",
        "retired_on must be a TOML date",
    ),
    (
        "retired not a boolean",
        service() + 'retired = "ja"\n',
        "retired must be true or false, not 'ja'",
    ),
    (
        "both groups and direct permissions",
        service("tjanst", "a")
        + '[[service.group]]\nname = "Ett"\n[[service.group.permission]]\nid = "b"\nname = "B"\n',
        "service 'tjanst': has both [[service.permission]] and [[service.group]]",
    ),
    ("service without permissions", SERVICE.format(id="tjanst"), "has no permissions"),
    (
        "group without permissions",
        SERVICE.format(id="tjanst") + '[[service.group]]\nname = "Ett"\n',
        "service 'tjanst', group 1 'Ett': has no permissions",
    ),
    ("no services", "# tom\n", "no [[service]] entries"),
    (
        "a table where an array of tables belongs",
        SERVICE.format(id="tjanst").replace("[[service]]", "[service]"),
        "the file: service must be an array of tables",
    ),
    ("not TOML", service() + "name = \n", "not valid TOML"),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [(text, message) for _, text, message in BROKEN],
    ids=[b[0] for b in BROKEN],
)
def test_a_broken_file_fails_at_load_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogueError) as raised:
        load(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "saknas.toml"
    with pytest.raises(CatalogueError, match=r"saknas\.toml: cannot be read"):
        load(path)


def test_a_file_not_in_utf8_fails_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(service().encode("latin-1"))
    with pytest.raises(CatalogueError, match=r"latin1\.toml: cannot be read: 'utf-8' codec"):
        load(path)


def test_the_same_permission_id_may_appear_in_two_services(tmp_path: Path) -> None:
    catalogue = load(write(tmp_path, service("ett", "las") + service("tva", "las")))
    assert catalogue.permission("ett", "las") is not None
    assert catalogue.permission("tva", "las") is not None


def test_names_are_stored_without_surrounding_space(tmp_path: Path) -> None:
    catalogue = load(write(tmp_path, service().replace('"Tjänst"', '" Tjänst "')))
    assert [s.name for s in catalogue.services] == ["Tjänst"]
