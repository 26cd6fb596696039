"""The administrators' browser client, end to end: Debian's Chromium against the real server
(on the test run's database), walking the administrators' manual for a municipality and a
region. Each view is saved as a screenshot in client/screenshots/."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, async_playwright, expect

from extensions import EServices, demo
from extensions.catalogue import load
from scim.operator import Operator
from scim.settings import Settings
from scim.storage.database import create_engine, upgrade
from tests.conftest import ESERVICES, PATCH_SCHEMA, fresh_database, user_body
from tests.live import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS, live_server

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")

STOCKHOLM_ADMIN = "Admininra Stockholm"
GOTEBORG_ADMIN = "Admininra Göteborg"
REGION_ADMIN = "Admininra Västernorrland"
STATLIG = "Ansök om statlig ersättning"
ENSAMKOMMANDE = "Se och ändra ansvar för ensamkommande"
LANDSTING = "E-tjänst för landsting"
ENSAMKOMMANDE_ID = "se-och-andra-ansvar-for-ensamkommande"
LANDSTING_ID = "e-tjanst-for-landsting"
CHOOSE_SERVICE = "Välj tjänst hos Migrationsverket"
NOT_FOUND = re.compile("Användaren finns inte")
# Stockholm's agreements cover both municipal e-services, Göteborg's only the first.


@dataclass(frozen=True)
class Live:
    url: str
    tokens: dict[str, str]  # organisation number -> its identity system's bearer token

    def scim(self, org_number: str) -> httpx.AsyncClient:
        """The organisation's identity system, provisioning over SCIM meanwhile."""
        return httpx.AsyncClient(
            base_url=f"{self.url}/scim/v2",
            headers={
                "Authorization": f"Bearer {self.tokens[org_number]}",
                "Content-Type": "application/scim+json",
            },
        )


async def _tokens(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    tokens = {}
    try:
        async with engine.begin() as connection:
            operator = Operator(connection, "tests")
            for organisation in demo.ORGANISATIONS:
                tenant = await operator.tenant(organisation["org_number"])
                tokens[organisation["org_number"]] = (await operator.issue_token(tenant))[1]
    finally:
        await engine.dispose()
    return tokens


async def _prepare(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """The demo organisations on a database of their own, served in demo mode on loopback."""
    with fresh_database() as database_url:
        settings = Settings(database_url=database_url, demo=True)
        asyncio.run(_prepare(database_url))
        asyncio.run(EServices.from_settings(settings).load_demo(settings, lambda _: None))
        tokens = asyncio.run(_tokens(database_url))
        with live_server(settings) as url:
            yield Live(url, tokens)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(locale="sv-SE", viewport={"width": 1280, "height": 800})
    yield context
    await context.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [], errors  # no script error in any workflow


def current_permissions(service_id: str) -> int:
    """How many permissions the catalogue offers in an e-service (retired ones are not)."""
    service = load().service(service_id)
    assert service is not None
    return sum(not permission.retired for permission in service.permissions)


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


async def log_in(page: Page, live: Live, administrator: str) -> None:
    await page.goto(f"{live.url}/admin/")
    await page.get_by_role("button", name=re.compile(f"^Logga in som {administrator},")).click()
    await expect(page.get_by_role("heading", name="Användare")).to_be_visible()


def rows(page: Page) -> Any:
    return page.locator("table.users tbody tr")


def first_names(page: Page) -> Any:
    return page.locator("table.users tbody td:first-child")


async def open_user(page: Page, given_name: str) -> None:
    await page.get_by_role("link", name=given_name, exact=True).click()
    await expect(page.get_by_role("heading", name="Användaruppgifter")).to_be_visible()


async def find_user(client: httpx.AsyncClient, hsa_id: str) -> dict[str, Any] | None:
    response = await client.get("/Users", params={"filter": f'{ESERVICES}:hsaId eq "{hsa_id}"'})
    found = response.json()["Resources"]
    return found[0] if found else None


# --- 3.1 Logga in ------------------------------------------------------------------------


async def test_without_a_certificate_login_says_what_to_check(page: Page, live: Live) -> None:
    await page.goto(f"{live.url}/admin/")
    await expect(page.get_by_role("heading", name="Logga in", exact=True)).to_be_visible()
    await screenshot(page, "01-logga-in")
    await page.get_by_role("button", name="Logga in med SITHS-kort").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Inget giltigt SITHS-kort hittades")
    # 3.1.1: what the administrator can check themselves.
    await expect(page.get_by_text("Kontrollera giltighetsdatum på kortet.")).to_be_visible()
    await expect(page.get_by_text(re.compile("Net iD"))).to_be_visible()
    await expect(page.locator("header.top")).to_have_count(0)
    await screenshot(page, "02-logga-in-utan-kort")


async def test_every_view_has_organisation_administrator_and_logout(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    header = page.locator("header.top")
    await expect(header).to_contain_text("Stockholms stad")
    await expect(header).to_contain_text(f"Inloggad som: {STOCKHOLM_ADMIN}")
    await screenshot(page, "03-anvandare")
    for view in ("Anna", "Ändra och lägg till behörigheter", STATLIG):
        await page.get_by_role("link", name=view, exact=True).click()
        await expect(page.locator("h1")).not_to_have_text("Användare")
        await expect(header.get_by_role("button", name="Logga ut")).to_be_visible()
        await expect(header).to_contain_text("Stockholms stad")


async def test_logging_out_ends_the_session_on_the_server(
    page: Page, context: BrowserContext, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    (cookie,) = [c for c in await context.cookies() if c["name"] == "scim_session"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    await page.get_by_role("button", name="Logga ut").click()
    await expect(page.get_by_role("status")).to_have_text("Du är utloggad.")
    await expect(page.get_by_role("button", name="Logga in med SITHS-kort")).to_be_visible()
    async with httpx.AsyncClient(base_url=live.url) as client:
        replayed = await client.get(
            "/session", headers={"Cookie": f"scim_session={cookie['value']}"}
        )
    assert replayed.status_code == 401


async def test_an_expired_session_returns_to_the_login(
    page: Page, context: BrowserContext, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await context.clear_cookies()
    await page.get_by_role("link", name="Anna", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("sessionen gått ut")
    await expect(page.get_by_role("button", name="Logga in med SITHS-kort")).to_be_visible()


# --- 4.1–4.3 Filtrera, sök, sortera --------------------------------------------------------


async def test_filters_offer_only_agreed_e_services_and_their_permissions(
    page: Page, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await expect(rows(page)).to_have_count(5)
    await page.locator("summary", has_text="Filtrera e-tjänster").click()
    services = page.locator("details.filter").first.get_by_role("checkbox")
    await expect(services).to_have_count(2)
    await page.locator("summary", has_text="Filtrera behörigheter").click()
    await expect(page.get_by_text("Välj först en eller flera e-tjänster")).to_be_visible()

    await page.get_by_role("checkbox", name=ENSAMKOMMANDE).check()
    await expect(first_names(page)).to_have_text(["Mohammed"])
    permissions = page.locator("details.filter").nth(1).get_by_role("checkbox")
    # The permissions of the chosen e-service.
    await expect(permissions).to_have_count(current_permissions(ENSAMKOMMANDE_ID))

    await page.get_by_role("checkbox", name=ENSAMKOMMANDE).uncheck()
    await page.get_by_role("checkbox", name=STATLIG).check()
    # Anna holds two herself; Erik and Åsa get one from the group "Handläggare".
    await expect(first_names(page)).to_have_text(["Anna", "Erik", "Åsa"])
    await page.get_by_role("checkbox", name="Grundersättning").check()
    await expect(first_names(page)).to_have_text(["Anna"])
    await screenshot(page, "04-filtrera")
    await page.get_by_role("button", name="Rensa filter").click()
    await expect(rows(page)).to_have_count(5)


async def test_the_region_filters_only_by_its_own_e_service(page: Page, live: Live) -> None:
    await log_in(page, live, REGION_ADMIN)
    await expect(page.locator("header.top")).to_contain_text("Region Västernorrland")
    await page.locator("summary", has_text="Filtrera e-tjänster").click()
    services = page.locator("details.filter").first.get_by_role("checkbox")
    await expect(services).to_have_count(1)
    await expect(services).to_have_accessible_name(LANDSTING)
    await services.check()
    await page.locator("summary", has_text="Filtrera behörigheter").click()
    await expect(page.locator("details.filter").nth(1).get_by_role("checkbox")).to_have_count(
        current_permissions(LANDSTING_ID)
    )
    await expect(first_names(page)).to_have_text(["Josef"])


async def test_search_finds_text_in_any_column_without_a_request_per_key(
    page: Page, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await expect(rows(page)).to_have_count(5)
    searches: list[str] = []

    def seen(request: Request) -> None:
        if "/scim/v2/Users?" in request.url:
            searches.append(request.url)

    page.on("request", seen)
    box = page.get_by_role("searchbox", name="Sök")
    await box.press_sequentially("berg", delay=40)
    await expect(first_names(page)).to_have_text(["Åsa"])  # Öberg
    assert len(searches) == 1, searches
    for term, expected in (
        ("1004", ["Mohammed"]),  # HSA-id
        ("sofia.nil", ["Sofia"]),  # e-post
        ("anna lind", ["Anna"]),  # every word, in any column
        ("e", ["Anna", "Erik", "Mohammed", "Sofia", "Åsa"]),
        ('"<x>', []),
    ):
        await box.fill(term)
        await expect(first_names(page)).to_have_text(expected)
    await expect(page.get_by_text("Inga användare matchar.")).to_be_visible()


async def test_every_column_sorts_up_and_down(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await expect(first_names(page)).to_have_text(["Anna", "Erik", "Mohammed", "Sofia", "Åsa"])
    await page.get_by_role("button", name="Sortera på Efternamn, fallande").click()
    await expect(page.locator("table.users tbody td:nth-child(2)")).to_have_text(
        ["Öberg", "Nilsson", "Lindqvist", "Johansson", "Ali"]
    )
    sorted_column = page.get_by_role("columnheader", name=re.compile("Efternamn"))
    await expect(sorted_column).to_have_attribute("aria-sort", "descending")
    await page.get_by_role("button", name="Sortera på HSA-id, stigande").click()
    await expect(first_names(page)).to_have_text(["Anna", "Erik", "Åsa", "Mohammed", "Sofia"])
    await page.get_by_role("button", name="Sortera på E-post, fallande").click()
    await expect(first_names(page)).to_have_text(["Sofia", "Mohammed", "Erik", "Åsa", "Anna"])
    await page.get_by_role("button", name="Sortera på Förnamn, fallande").click()
    await expect(first_names(page)).to_have_text(["Åsa", "Sofia", "Mohammed", "Erik", "Anna"])


async def test_long_lists_are_paged_by_the_server(page: Page, live: Live) -> None:
    async with live.scim("2120001355") as goteborg:
        for number in range(30):
            body = user_body(
                f"pag{number:02d}@goteborg.se",
                name={"givenName": f"Sida{number:02d}", "familyName": "Testsson"},
                emails=[{"value": f"pag{number:02d}@goteborg.se", "primary": True}],
            )
            body[ESERVICES] = {"hsaId": f"SE2120001355-P{number:03d}"}
            assert (await goteborg.post("/Users", json=body)).status_code == 201
    await log_in(page, live, GOTEBORG_ADMIN)
    await expect(page.locator("#showing")).to_have_text("Visar 1–25 av 32 användare")
    await expect(rows(page)).to_have_count(25)
    await page.get_by_role("button", name="Nästa").click()
    await expect(page.locator("#showing")).to_have_text("Visar 26–32 av 32 användare")
    await expect(page.get_by_role("button", name="Nästa")).to_be_disabled()
    await page.get_by_role("button", name="Föregående").click()
    await expect(page.locator("#showing")).to_have_text("Visar 1–25 av 32 användare")


# --- 4.4 Lägg till användare, 4.5 behörigheter ------------------------------------------------


async def test_add_user_then_grant_permissions_with_one_patch(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    opener = page.get_by_role("button", name="Lägg till användare")
    await opener.click()
    dialog = page.get_by_role("dialog", name="Lägg till användare")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Förnamn")).to_be_focused()
    await dialog.get_by_role("button", name="Spara").click()
    for message in ("Fyll i förnamn.", "Fyll i efternamn.", "Fyll i HSA-id.", "Fyll i e-post."):
        await expect(dialog.get_by_text(message)).to_be_visible()
    await dialog.get_by_label("Förnamn").fill("Lena")
    await dialog.get_by_label("Efternamn").fill("Holm")
    await dialog.get_by_label("HSA-id").fill("se123123-2133223")
    await dialog.get_by_label("E-post").fill("lena.holm@")
    await dialog.get_by_role("button", name="Spara").click()
    await expect(dialog.get_by_label("HSA-id")).to_have_attribute("aria-invalid", "true")
    await expect(dialog.get_by_text(re.compile("HSA-id ska vara SE, tio siffror"))).to_be_visible()
    await expect(dialog.get_by_text(re.compile("Ange en giltig e-postadress"))).to_be_visible()
    await screenshot(page, "05-lagg-till-fel")
    # Anna Lindqvist has this HSA-id already.
    await dialog.get_by_label("HSA-id").fill("SE2120000142-1001")
    await dialog.get_by_label("E-post").fill("lena.holm@stockholm.se")
    await dialog.get_by_role("button", name="Spara").click()
    await expect(dialog.get_by_text("HSA-id:t används redan")).to_be_visible()
    await expect(dialog.get_by_label("HSA-id")).to_be_focused()
    await dialog.get_by_label("HSA-id").fill("se2120000142-lh01")
    await screenshot(page, "06-lagg-till")
    await dialog.get_by_role("button", name="Spara").click()

    await expect(dialog).to_have_count(0)
    await expect(page.get_by_role("heading", name="Lena Holm")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Lägg nu till behörigheter")
    await expect(page.get_by_text("Användaren har inga behörigheter ännu.")).to_be_visible()
    await expect(page.locator(".details")).to_contain_text("SE2120000142-LH01")

    await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
    await expect(page.get_by_role("heading", name=CHOOSE_SERVICE)).to_be_visible()
    offered = page.locator("ul.services").get_by_role("link")
    await expect(offered).to_have_text([STATLIG, ENSAMKOMMANDE])
    await screenshot(page, "07-valj-tjanst")
    await page.get_by_role("link", name=STATLIG).click()
    await page.get_by_label("Asylsökande i grundskola").check()
    await page.get_by_label("Grundersättning").check()
    await screenshot(page, "08-valj-behorighet")
    writes: list[tuple[str, str | None]] = []
    page.on(
        "request",
        lambda request: (
            writes.append((request.method, request.headers.get("if-match")))
            if request.method != "GET"
            else None
        ),
    )
    await page.get_by_role("button", name="Klar").click()
    await expect(page.get_by_role("heading", name="Aktuella behörigheter")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Behörigheterna är sparade.")
    assert len(writes) == 1 and writes[0][0] == "PATCH" and writes[0][1], writes
    permissions = page.locator(".service")
    await expect(permissions.locator("h3")).to_have_text([STATLIG])
    await expect(permissions.locator("h4")).to_have_text(
        ["Ersättningar som ansöks", re.compile("^Ersättningar som betalas ut utan ansökan")]
    )
    await expect(permissions.locator("li")).to_have_text(
        ["Asylsökande i grundskola", "Grundersättning"]
    )
    await screenshot(page, "09-anvandare")
    async with live.scim("2120000142") as stockholm:
        created = await find_user(stockholm, "SE2120000142-LH01")
    assert created is not None
    assert created["userName"] == "SE2120000142-LH01"
    assert created["emails"][0]["value"] == "lena.holm@stockholm.se"
    assert sorted(p["value"] for p in created[ESERVICES]["permissions"]) == [
        "ansok-om-statlig-ersattning:asylsokande-i-grundskola",
        "ansok-om-statlig-ersattning:grundersattning",
    ]


async def test_permissions_from_a_group_are_shown_and_cannot_be_unticked(
    page: Page, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await open_user(page, "Erik")
    await expect(page.locator(".service li")).to_have_text(
        ["Hemtjänst för nyanlända (via gruppen Handläggare)"]
    )
    await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
    await page.get_by_role("link", name=STATLIG).click()
    inherited = page.get_by_label("Hemtjänst för nyanlända")
    await expect(inherited).to_be_checked()
    await expect(inherited).to_be_disabled()
    await expect(page.get_by_text(re.compile("tas bort i gruppen"))).to_be_visible()
    # Unticking one's own and ticking another keeps the other e-service's grants.
    await page.get_by_label("Årlig ersättning – rörlig").check()
    await page.get_by_role("button", name="Klar").click()
    await expect(page.locator(".service li")).to_have_text(
        ["Hemtjänst för nyanlända (via gruppen Handläggare)", "Årlig ersättning – rörlig"]
    )


async def test_unticking_removes_only_that_e_services_permissions(page: Page, live: Live) -> None:
    async with live.scim("2120000142") as stockholm:
        body = user_body(
            "two.services@stockholm.se",
            name={"givenName": "Tove", "familyName": "Tvåtjänst"},
            emails=[{"value": "tove@stockholm.se", "primary": True}],
        )
        body[ESERVICES]["permissions"] = [
            {"value": "ansok-om-statlig-ersattning:grundersattning"},
            {"value": f"{ENSAMKOMMANDE_ID}:administrera-barn-utan-vardnadshavare"},
        ]
        created = (await stockholm.post("/Users", json=body)).json()
        await log_in(page, live, STOCKHOLM_ADMIN)
        await open_user(page, "Tove")
        await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
        await page.get_by_role("link", name=STATLIG).click()
        await page.get_by_label("Grundersättning").uncheck()
        await page.get_by_role("button", name="Klar").click()
        await expect(page.locator(".service h3")).to_have_text([ENSAMKOMMANDE])
        after = (await stockholm.get(f"/Users/{created['id']}")).json()
    assert [p["value"] for p in after[ESERVICES]["permissions"]] == [
        f"{ENSAMKOMMANDE_ID}:administrera-barn-utan-vardnadshavare"
    ]


async def test_the_region_grants_from_its_own_e_service_only(page: Page, live: Live) -> None:
    await log_in(page, live, REGION_ADMIN)
    await open_user(page, "Josef")
    await expect(page.locator(".service h3")).to_have_text([LANDSTING])
    await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
    await expect(page.locator("ul.services").get_by_role("link")).to_have_text([LANDSTING])
    await screenshot(page, "10-region-valj-tjanst")
    user_url = page.url.removesuffix("/behorigheter")
    # A municipal e-service is never offered, whatever the address asks for.
    await page.goto(f"{user_url}/behorigheter/ansok-om-statlig-ersattning")
    await expect(page).to_have_url(re.compile("/behorigheter$"))  # sent back to the choice
    await expect(page.get_by_role("heading", name=CHOOSE_SERVICE)).to_be_visible()
    await page.get_by_role("link", name=LANDSTING).click()
    await expect(page.get_by_role("checkbox")).to_have_count(current_permissions(LANDSTING_ID))
    await page.get_by_label("Rapportera hälsoundersökning").check()
    await page.get_by_label("Se asylsökande").uncheck()
    await screenshot(page, "11-region-valj-behorighet")
    await page.get_by_role("button", name="Klar").click()
    await expect(page.locator(".service li")).to_have_text(
        ["Rapportera hälsoundersökning", "Skicka in ansökan om ersättning"]
    )
    await screenshot(page, "12-region-anvandare")


# --- 4.6 Ändra användaruppgifter, and changes made meanwhile ---------------------------------


async def test_edit_user_details_and_cancel(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await open_user(page, "Sofia")
    opener = page.get_by_role("button", name="Ändra användaruppgifter")
    await opener.click()
    dialog = page.get_by_role("dialog", name="Ändra användare")
    await expect(dialog.get_by_label("Förnamn")).to_have_value("Sofia")
    await expect(dialog.get_by_label("Efternamn")).to_have_value("Nilsson")
    await expect(dialog.get_by_label("HSA-id")).to_have_value("SE2120000142-1005")
    await expect(dialog.get_by_label("E-post")).to_have_value("sofia.nilsson@stockholm.se")
    await screenshot(page, "13-andra-anvandare")
    await dialog.get_by_label("Efternamn").fill("Nilsson-Berg")
    await dialog.get_by_role("button", name="Avbryt").click()
    await expect(dialog).to_have_count(0)
    await expect(opener).to_be_focused()  # focus returns to where it was
    await expect(page.locator(".details")).to_contain_text("Sofia Nilsson")

    await opener.click()
    await dialog.get_by_label("Efternamn").fill("Nilsson-Berg")
    await dialog.get_by_label("E-post").fill("sofia.nilsson-berg@stockholm.se")
    await dialog.get_by_role("button", name="Spara").click()
    await expect(page.get_by_role("status")).to_have_text("Användaruppgifterna är sparade.")
    await expect(page.locator(".details")).to_contain_text("Sofia Nilsson-Berg")
    await expect(page.locator(".details")).to_contain_text("sofia.nilsson-berg@stockholm.se")
    async with live.scim("2120000142") as stockholm:
        saved = await find_user(stockholm, "SE2120000142-1005")
    assert saved is not None
    assert saved["name"]["familyName"] == "Nilsson-Berg"
    assert saved["userName"] == "sofia.nilsson@stockholm.se"  # the identity system's own


async def test_a_stale_edit_says_so_instead_of_overwriting(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await open_user(page, "Mohammed")
    async with live.scim("2120000142") as stockholm:
        user = await find_user(stockholm, "SE2120000142-1004")
        assert user is not None
        change = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "name.familyName", "value": "Al-Sayed"}],
        }
        assert (await stockholm.patch(f"/Users/{user['id']}", json=change)).status_code == 200

        await page.get_by_role("button", name="Ändra användaruppgifter").click()
        dialog = page.get_by_role("dialog", name="Ändra användare")
        await dialog.get_by_label("Förnamn").fill("Mo")
        await dialog.get_by_role("button", name="Spara").click()
        await expect(dialog.get_by_role("alert")).to_contain_text("ändrats av någon annan")
        await screenshot(page, "14-andrad-av-annan")
        await dialog.get_by_role("button", name="Ladda om").click()
        await expect(page.locator(".details")).to_contain_text("Mohammed Al-Sayed")
        after = (await stockholm.get(f"/Users/{user['id']}")).json()
        assert after["name"]["givenName"] == "Mohammed"  # nothing overwritten

        # The same for permissions: ticked in a view older than the user.
        await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
        await page.get_by_role("link", name=ENSAMKOMMANDE).click()
        held = page.get_by_label("Administrera barn utan vårdnadshavare")
        await expect(held).to_be_checked()  # the view has read the user (and its ETag)
        change["Operations"][0]["value"] = "Ali"
        assert (await stockholm.patch(f"/Users/{user['id']}", json=change)).status_code == 200
        await held.uncheck()
        await page.get_by_role("button", name="Klar").click()
        await expect(page.get_by_role("alert")).to_contain_text("ändrats av någon annan")
        after = (await stockholm.get(f"/Users/{user['id']}")).json()
        assert after[ESERVICES]["permissions"]  # still held


async def test_changes_by_the_identity_system_show_on_reload(page: Page, live: Live) -> None:
    await log_in(page, live, GOTEBORG_ADMIN)
    await expect(page.get_by_role("link", name="Karin", exact=True)).to_be_visible()
    async with live.scim("2120001355") as goteborg:
        body = user_body(
            "nils.nyman@goteborg.se",
            name={"givenName": "Nils", "familyName": "Nyman"},
            emails=[{"value": "nils.nyman@goteborg.se", "primary": True}],
        )
        body[ESERVICES] = {"hsaId": "SE2120001355-NN01"}
        assert (await goteborg.post("/Users", json=body)).status_code == 201
    await page.reload()
    await page.get_by_role("searchbox", name="Sök").fill("Nyman")
    await expect(first_names(page)).to_have_text(["Nils"])


# --- 4.7 Ta bort användare ----------------------------------------------------------------


async def test_delete_asks_first_and_only_ok_deletes(page: Page, live: Live) -> None:
    async with live.scim("2120000142") as stockholm:
        body = user_body(
            "ta.bort@stockholm.se",
            name={"givenName": "Tage", "familyName": "Bort"},
            emails=[{"value": "tage.bort@stockholm.se", "primary": True}],
        )
        user = (await stockholm.post("/Users", json=body)).json()
        await log_in(page, live, STOCKHOLM_ADMIN)
        await open_user(page, "Tage")
        remove = page.get_by_role("button", name="Ta bort användare")
        await remove.click()
        dialog = page.get_by_role("dialog", name="Ta bort användare")
        await expect(dialog).to_contain_text("Vill du ta bort Tage Bort")
        await expect(dialog.get_by_role("button", name="Avbryt")).to_be_focused()
        await screenshot(page, "15-ta-bort")
        await dialog.get_by_role("button", name="Avbryt").click()
        await expect(dialog).to_have_count(0)
        await remove.click()
        await page.keyboard.press("Escape")
        await expect(dialog).to_have_count(0)
        assert (await stockholm.get(f"/Users/{user['id']}")).status_code == 200

        await remove.click()
        await dialog.get_by_role("button", name="OK").click()
        await expect(page.get_by_role("status")).to_have_text("Tage Bort är borttagen.")
        await expect(page.get_by_role("heading", name="Användare")).to_be_visible()
        await expect(page.get_by_role("link", name="Tage", exact=True)).to_have_count(0)
        assert (await stockholm.get(f"/Users/{user['id']}")).status_code == 404


# --- one organisation never sees another's ---------------------------------------------------


async def test_an_administrator_never_sees_another_organisations_users(
    page: Page, live: Live
) -> None:
    async with live.scim("2120000142") as stockholm:
        anna = await find_user(stockholm, "SE2120000142-1001")
    assert anna is not None
    for administrator in (GOTEBORG_ADMIN, REGION_ADMIN):
        await log_in(page, live, administrator)
        await page.get_by_role("searchbox", name="Sök").fill("Lindqvist")
        await expect(page.get_by_text("Inga användare matchar.")).to_be_visible()
        await page.goto(f"{live.url}/admin/#/anvandare/{anna['id']}")
        await expect(page.get_by_role("heading", name=NOT_FOUND)).to_be_visible()
        await page.goto(f"{live.url}/admin/#/anvandare/{anna['id']}/behorigheter")
        await expect(page.get_by_role("heading", name=NOT_FOUND)).to_be_visible()
        await page.get_by_role("button", name="Logga ut").click()
        # Signed out before the next signs in: a page left at once could cut the request.
        await expect(page.get_by_role("status")).to_have_text("Du är utloggad.")


# --- safe and usable ----------------------------------------------------------------------


async def test_user_supplied_text_is_shown_as_text_under_a_strict_policy(
    page: Page, live: Live
) -> None:
    hostile = '<img src=x onerror="document.title=1">'
    async with live.scim("2120000142") as stockholm:
        body = user_body(
            "hostile@stockholm.se",
            name={"givenName": "Xss", "familyName": hostile},
            emails=[{"value": "hostile@stockholm.se", "primary": True}],
        )
        assert (await stockholm.post("/Users", json=body)).status_code == 201
    response = await page.goto(f"{live.url}/admin/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    await log_in(page, live, STOCKHOLM_ADMIN)
    await expect(page.get_by_role("cell", name=hostile)).to_be_visible()
    assert await page.locator("table.users img").count() == 0
    # Text from an identity system never reaches the title as markup either.
    assert await page.title() == "Användare – Administrera behörigheter för e-tjänster"


async def test_narrow_screens_need_no_sideways_scrolling(browser: Browser, live: Live) -> None:
    context = await browser.new_context(locale="sv-SE", viewport={"width": 360, "height": 740})
    try:
        page = await context.new_page()
        await log_in(page, live, STOCKHOLM_ADMIN)
        await expect(first_names(page).first).to_be_visible()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
        await screenshot(page, "16-smal-skarm")
        await open_user(page, "Anna")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        await context.close()


async def test_the_list_works_from_the_keyboard(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await page.get_by_role("link", name="Anna", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Anna Lindqvist")).to_be_focused()
    await page.get_by_role("link", name="Tillbaka till användare").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Användare")).to_be_focused()


# --- Grupper: permissions through groups ------------------------------------------------


async def test_a_group_from_the_identity_system_gives_its_members_permissions(
    page: Page, live: Live
) -> None:
    """Entra ID sends groups and members but no permissions: the administrator gives them
    to the group here, and every member holds them."""
    async with live.scim("2120000142") as stockholm:
        member_ids = []
        for given, family in (("Gunnel", "Gruppsson"), ("Gustav", "Gruppsson")):
            body = user_body(
                f"{given.lower()}.gruppsson@stockholm.se",
                name={"givenName": given, "familyName": family},
                emails=[{"value": f"{given.lower()}@stockholm.se", "primary": True}],
            )
            member_ids.append((await stockholm.post("/Users", json=body)).json()["id"])
        group = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Mottagningsenheten",
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "members": [{"value": member_id} for member_id in member_ids],
        }
        created = (await stockholm.post("/Groups", json=group)).json()

        await log_in(page, live, STOCKHOLM_ADMIN)
        await (
            page.get_by_role("navigation", name="Huvudmeny")
            .get_by_role("link", name="Grupper")
            .click()
        )
        await expect(page.get_by_role("heading", name="Grupper")).to_be_visible()
        row = page.locator("table.groups tbody tr", has_text="Mottagningsenheten")
        await expect(row.locator("td").nth(1)).to_have_text("2")
        await screenshot(page, "17-grupper")

        await page.get_by_role("link", name="Mottagningsenheten").click()
        await expect(page.get_by_role("heading", name="Mottagningsenheten")).to_be_visible()
        await expect(
            page.get_by_text(re.compile("kommer från organisationens identitetssystem"))
        ).to_be_visible()
        await expect(page.locator("#members tbody tr")).to_have_count(2)
        await expect(page.get_by_text("Gruppen ger inga behörigheter ännu.")).to_be_visible()
        await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
        await page.get_by_role("link", name=STATLIG).click()
        await page.get_by_label("Grundersättning").check()
        await page.get_by_role("button", name="Klar").click()
        await expect(page.get_by_text("Behörigheterna är sparade.")).to_be_visible()
        await expect(page.get_by_role("heading", name="Mottagningsenheten")).to_be_visible()
        await expect(page.locator("section li")).to_have_text(["Grundersättning"])
        await screenshot(page, "18-grupp")

        stored = (await stockholm.get(f"/Groups/{created['id']}")).json()
        grants = stored["urn:ietf:params:scim:schemas:extension:behorigheter:2.0:Group"]
        assert [p["value"] for p in grants["permissions"]] == [
            "ansok-om-statlig-ersattning:grundersattning"
        ]
        member = (await stockholm.get(f"/Users/{member_ids[0]}")).json()
        assert "ansok-om-statlig-ersattning:grundersattning" in [
            e["value"] for e in member["entitlements"]
        ]

    # A member's view names the group, and leads back to it.
    await page.get_by_role("link", name="Gunnel Gruppsson").click()
    await expect(page.locator(".service li")).to_have_text(
        ["Grundersättning (via gruppen Mottagningsenheten)"]
    )
    await page.get_by_role("link", name="via gruppen Mottagningsenheten").click()
    await expect(page.get_by_role("heading", name="Mottagningsenheten")).to_be_visible()


async def test_a_refused_save_keeps_what_was_typed_and_says_so_in_swedish(
    page: Page, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await page.get_by_role("button", name="Lägg till användare").click()
    dialog = page.get_by_role("dialog")
    long_name = "Långnamn" * 31 + "xx"  # 250 characters: with the first name over 255
    await dialog.get_by_label("Förnamn").fill("Maximiliana")
    await dialog.get_by_label("Efternamn").fill(long_name)
    await dialog.get_by_label("HSA-id").fill("SE2120000142-LONG1")
    await dialog.get_by_label("E-post").fill("lang@stockholm.se")
    await dialog.get_by_role("button", name="Spara").click()
    await expect(dialog).to_be_visible()
    await expect(
        dialog.get_by_text(re.compile("tillsammans vara högst 254 tecken"))
    ).to_be_visible()
    await expect(dialog.get_by_label("Efternamn")).to_have_value(long_name)
    await expect(dialog.get_by_label("Förnamn")).to_have_value("Maximiliana")


async def test_leaving_unsaved_ticks_asks_first_and_avbryt_leaves(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await open_user(page, "Anna")
    await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
    await page.get_by_role("link", name=STATLIG).click()
    await page.get_by_label("Grundersättning").click()
    asked: list[str] = []
    answered = asyncio.Event()

    async def stay(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()
        answered.set()

    page.once("dialog", stay)
    await page.get_by_role("link", name="Avbryt").click()
    # The handler runs as its own task: wait for it rather than for the click.
    await asyncio.wait_for(answered.wait(), timeout=10)
    assert asked and "utan att spara" in asked[0]
    await expect(page.get_by_role("button", name="Klar")).to_be_visible()  # stayed

    async def leave(dialog: Any) -> None:
        await dialog.accept()

    page.once("dialog", leave)
    await page.get_by_role("link", name="Avbryt").click()
    await expect(page.get_by_role("heading", name="Aktuella behörigheter")).to_be_visible()


async def test_the_list_lives_in_the_address(page: Page, live: Live) -> None:
    """Search, sort and page are in the address: a reload, Back, or the link sent to a
    colleague shows the same list."""
    async with live.scim("2120000142") as stockholm:
        for number, (given, family) in enumerate([("Adela", "Adresstorp"), ("Lina", "Länkadress")]):
            body = user_body(
                f"adress{number}@stockholm.se",
                name={"givenName": given, "familyName": family},
                emails=[{"value": f"adress{number}@stockholm.se", "primary": True}],
            )
            assert (await stockholm.post("/Users", json=body)).status_code == 201
    listed = ["Länkadress", "Adresstorp"]
    await log_in(page, live, STOCKHOLM_ADMIN)
    await page.get_by_label("Sök", exact=True).fill("adress")
    await page.get_by_role("button", name="Sortera på Efternamn, fallande").click()
    await expect(page.locator("table.users tbody td:nth-child(2)")).to_have_text(listed)
    address = page.url
    assert "sok=adress" in address and "sortera=familyName" in address and "fallande" in address
    await page.reload()
    await expect(page.get_by_label("Sök", exact=True)).to_have_value("adress")
    await expect(page.locator("table.users tbody td:nth-child(2)")).to_have_text(listed)
    await open_user(page, "Adela")
    await page.go_back()
    await expect(page.locator("table.users tbody td:nth-child(2)")).to_have_text(listed)
    colleague = await page.context.new_page()
    await colleague.goto(address)
    await expect(colleague.locator("table.users tbody td:nth-child(2)")).to_have_text(listed)
    await colleague.close()


async def test_back_with_a_dialog_open_closes_it_and_deletes_nothing(
    page: Page, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await open_user(page, "Lena")
    await page.get_by_role("button", name="Ta bort användare").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await page.go_back()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", name="Aktuella behörigheter")).to_be_visible()
    async with live.scim("2120000142") as stockholm:
        found = (
            await stockholm.get("/Users", params={"filter": 'name.givenName eq "Lena"'})
        ).json()
    assert found["totalResults"] == 1


async def test_historik_says_who_changed_what_and_when(page: Page, live: Live) -> None:
    async with live.scim("2120000142") as stockholm:
        body = user_body(
            "historik@stockholm.se",
            name={"givenName": "Hilda", "familyName": "Historia"},
            emails=[{"value": "hilda@stockholm.se", "primary": True}],
        )
        created = (await stockholm.post("/Users", json=body)).json()
        await log_in(page, live, STOCKHOLM_ADMIN)
        await page.goto(f"{live.url}/admin/#/anvandare/{created['id']}")
        await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
        await page.get_by_role("link", name=STATLIG).click()
        await page.get_by_label("Grundersättning").check()
        await page.get_by_role("button", name="Klar").click()
        history = page.locator("#history tbody tr")
        await expect(history).to_have_count(2)
        await expect(history.nth(0)).to_contain_text(STOCKHOLM_ADMIN)
        await expect(history.nth(0)).to_contain_text("Ändrad: behörigheter")
        await expect(history.nth(1)).to_contain_text("IdP Stockholms stad")  # its system
        await expect(history.nth(1)).to_contain_text("Skapad")
        await screenshot(page, "19-historik")


async def test_exportera_gives_the_filtered_list_every_page_as_csv_for_excel(
    page: Page, live: Live
) -> None:
    async with live.scim("2120000142") as stockholm:
        names = [f"Export{n:02d}" for n in range(28)] + [
            '=HYPERLINK("http://x")',
            "+46 8",
            "@SUM(A1)",
        ]
        for number, given in enumerate(names):
            body = user_body(
                f"export{number}@stockholm.se",
                name={"givenName": given, "familyName": "Exportsson"},
                emails=[{"value": f"export{number}@stockholm.se", "primary": True}],
            )
            body[ESERVICES]["permissions"] = [
                {"value": "ansok-om-statlig-ersattning:grundersattning"}
            ]
            assert (await stockholm.post("/Users", json=body)).status_code == 201
    await log_in(page, live, STOCKHOLM_ADMIN)
    await page.get_by_label("Sök", exact=True).fill("Exportsson")
    await expect(page.get_by_text(f"Visar 1–25 av {len(names)} användare")).to_be_visible()
    async with page.expect_download() as waiting:
        await page.get_by_role("button", name="Exportera").click()
    download = await waiting.value
    raw = Path(await download.path()).read_bytes()
    assert raw.startswith("\ufeff".encode())  # UTF-8 with a byte order mark, for Excel
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0] == '"Förnamn";"Efternamn";"HSA-id";"E-post";"Behörigheter"'
    rows = [line for line in lines[1:] if line]
    assert len(rows) == len(names)  # every page, not the 25 shown
    assert all(row.endswith('"Ansök om statlig ersättning: Grundersättning"') for row in rows)
    firsts = {row.split(";")[0] for row in rows}
    # Nothing from an identity system becomes a formula in the spreadsheet.
    assert {'"\'=HYPERLINK(""http://x"")"', '"\'+46 8"', '"\'@SUM(A1)"'} <= firsts
    assert download.suggested_filename == "Behörigheter Stockholms stad.csv"


async def test_an_administrator_makes_fills_empties_and_deletes_a_group(
    page: Page, live: Live
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await (
        page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Grupper").click()
    )
    await page.get_by_role("button", name="Lägg till grupp").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("button", name="Spara").click()
    await expect(dialog.get_by_text("Fyll i gruppens namn.")).to_be_visible()
    await dialog.get_by_label("Namn").fill("handläggare")  # the demo's "Handläggare"
    await dialog.get_by_role("button", name="Spara").click()
    await expect(dialog.get_by_text(re.compile("finns redan en grupp"))).to_be_visible()
    await dialog.get_by_label("Namn").fill("Projektgruppen")
    await dialog.get_by_role("button", name="Spara").click()
    await expect(page.get_by_role("heading", name="Projektgruppen")).to_be_visible()

    await page.get_by_role("button", name="Lägg till medlem").click()
    await page.get_by_role("dialog").get_by_label("Sök").fill("Lindqvist")
    await page.get_by_role("button", name="Lägg till Anna Lindqvist i gruppen").click()
    await expect(page.get_by_text("Anna Lindqvist är tillagd i gruppen.")).to_be_visible()
    await expect(page.locator("#members tbody tr")).to_have_count(1)

    await page.get_by_role("button", name="Ta bort Anna Lindqvist ur gruppen").click()
    confirm = page.get_by_role("dialog")
    await expect(confirm.get_by_role("button", name="Avbryt")).to_be_focused()
    await confirm.get_by_role("button", name="OK").click()
    await expect(page.get_by_text("Anna Lindqvist är borttagen ur gruppen.")).to_be_visible()
    await expect(page.get_by_text("Gruppen har inga medlemmar.")).to_be_visible()

    await page.get_by_role("button", name="Ta bort grupp").click()
    await page.get_by_role("dialog").get_by_role("button", name="OK").click()
    await expect(page.get_by_text("Gruppen Projektgruppen är borttagen.")).to_be_visible()
    await expect(page.get_by_role("heading", name="Grupper")).to_be_visible()
    await expect(page.get_by_role("link", name="Projektgruppen")).to_have_count(0)


async def test_a_group_from_the_identity_system_is_not_changed_here(page: Page, live: Live) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    await page.goto(f"{live.url}/admin/#/grupper")
    await page.get_by_role("link", name="Mottagningsenheten").click()
    await expect(
        page.get_by_text(re.compile("kommer från organisationens identitetssystem"))
    ).to_be_visible()
    await expect(page.get_by_role("button", name="Lägg till medlem")).to_have_count(0)
    await expect(page.get_by_role("button", name="Ta bort grupp")).to_have_count(0)
