"""WCAG 2.2 AA in the browser client: axe-core (shipped in axe-playwright-python) on every
view and dialog finds no violation of the WCAG 2.0, 2.1 and 2.2 A and AA rules; the
keyboard alone walks the manual's workflows; every view has one h1 and its own title."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, expect

from tests.test_client import (  # noqa: F401 - the fixtures
    STATLIG,
    STOCKHOLM_ADMIN,
    Live,
    browser,
    live,
    log_in,
    open_user,
)

pytestmark = pytest.mark.skipif(
    not __import__("pathlib").Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"
)
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
AXE = Axe()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:  # noqa: F811
    # axe is injected as a script: the server's Content-Security-Policy would refuse it.
    context = await browser.new_context(
        locale="sv-SE", viewport={"width": 1280, "height": 800}, bypass_csp=True
    )
    page = await context.new_page()
    yield page
    await context.close()


async def violations(page: Page) -> list[str]:
    results = await AXE.run(page, options={"runOnly": {"type": "tag", "values": WCAG}})
    response = results.response
    checked = sum(len(response[kind]) for kind in ("passes", "violations", "incomplete"))
    assert checked >= 10, "axe checked (almost) nothing"  # it ran, with the WCAG rules
    found: list[dict[str, Any]] = response["violations"]
    return [
        f"{v['id']}: {v['help']} ({', '.join(n['target'][0] for n in v['nodes'][:3])})"
        for v in found
    ]


async def check(page: Page, view: str, seen: dict[str, list[str]]) -> None:
    seen[view] = await violations(page)
    assert await page.locator("h1").count() == 1, f"{view}: not one h1"


async def test_axe_finds_no_wcag_violation_in_any_view_or_dialog(page: Page, live: Live) -> None:  # noqa: F811
    seen: dict[str, list[str]] = {}
    await page.goto(f"{live.url}/admin/")
    await expect(page.get_by_role("heading", name="Logga in")).to_be_visible()
    await check(page, "login", seen)
    await log_in(page, live, STOCKHOLM_ADMIN)
    await check(page, "users", seen)
    await page.locator("summary", has_text="Filtrera e-tjänster").click()
    await check(page, "users, filter open", seen)
    await page.get_by_role("button", name="Lägg till användare").click()
    await page.get_by_role("dialog").get_by_role("button", name="Spara").click()
    await check(page, "add user, with errors", seen)
    await page.get_by_role("dialog").get_by_role("button", name="Avbryt").click()
    await open_user(page, "Erik")
    await check(page, "user", seen)
    await page.get_by_role("button", name="Ändra användaruppgifter").click()
    await check(page, "edit user", seen)
    await page.get_by_role("dialog").get_by_role("button", name="Avbryt").click()
    await page.get_by_role("button", name="Ta bort användare").click()
    await check(page, "delete user", seen)
    await page.get_by_role("dialog").get_by_role("button", name="Avbryt").click()
    await page.get_by_role("link", name="Ändra och lägg till behörigheter").click()
    await check(page, "services", seen)
    await page.get_by_role("link", name=STATLIG).click()
    await check(page, "permissions", seen)
    await (
        page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Grupper").click()
    )
    await expect(page.get_by_role("heading", name="Grupper")).to_be_visible()
    await check(page, "groups", seen)
    await page.get_by_role("button", name="Lägg till grupp").click()
    await page.get_by_role("dialog").get_by_role("button", name="Spara").click()
    await check(page, "add group, with an error", seen)
    await page.get_by_role("dialog").get_by_label("Namn").fill("Tillgänglighet")
    await page.get_by_role("dialog").get_by_role("button", name="Spara").click()
    await expect(page.get_by_role("heading", name="Tillgänglighet")).to_be_visible()
    await page.get_by_role("button", name="Lägg till medlem").click()
    await page.get_by_role("dialog").get_by_label("Sök").fill("Erik")
    await expect(
        page.get_by_role("dialog").get_by_role("button", name=re.compile("Erik"))
    ).to_be_visible()
    await check(page, "add member", seen)
    await page.get_by_role("dialog").get_by_role("button", name="Avbryt").click()
    await (
        page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Grupper").click()
    )
    await page.get_by_role("link", name="Handläggare", exact=True).click()
    await check(page, "group", seen)
    await page.get_by_role("link", name="Tillgänglighetsredogörelse").click()
    await expect(page.get_by_role("heading", name="Tillgänglighetsredogörelse")).to_be_visible()
    await check(page, "accessibility statement", seen)
    assert {view: found for view, found in seen.items() if found} == {}


async def test_every_view_has_its_own_title(page: Page, live: Live) -> None:  # noqa: F811
    await log_in(page, live, STOCKHOLM_ADMIN)
    titles = {await page.title()}
    await open_user(page, "Erik")
    titles.add(await page.title())
    await (
        page.get_by_role("navigation", name="Huvudmeny").get_by_role("link", name="Grupper").click()
    )
    await expect(page.get_by_role("heading", name="Grupper")).to_be_visible()
    titles.add(await page.title())
    assert len(titles) == 3, titles
    assert all(title.endswith("Administrera behörigheter för e-tjänster") for title in titles)


async def test_focus_stays_on_the_sort_or_page_button_used(page: Page, live: Live) -> None:  # noqa: F811
    await log_in(page, live, STOCKHOLM_ADMIN)
    button = page.get_by_role("button", name="Sortera på Efternamn, fallande")
    await button.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("table.users tbody td:nth-child(2)").first).to_have_text("Öberg")
    await expect(page.get_by_role("button", name="Sortera på Efternamn, fallande")).to_be_focused()
    box = await page.get_by_role("button", name="Sortera på Efternamn, fallande").bounding_box()
    assert box is not None and box["width"] >= 24 and box["height"] >= 24, box


async def test_the_keyboard_alone_adds_edits_grants_deletes_and_logs_out(
    page: Page,
    live: Live,  # noqa: F811
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)

    async def tab_to(name: str | re.Pattern[str], role: str = "button") -> None:
        target = page.get_by_role(role, name=name)  # type: ignore[arg-type]
        for _ in range(80):
            if await target.evaluate("element => element === document.activeElement"):
                return
            await page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {role} {name}")

    await tab_to("Lägg till användare")
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    for value in ("Kim", "Tangentsson", "SE2120000142-KEY1", "kim@stockholm.se"):
        await page.keyboard.type(value)
        await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # on "Spara"
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("heading", name="Kim Tangentsson")).to_be_visible()

    await tab_to("Ändra användaruppgifter")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("Kimberly")
    await tab_to("Spara")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Kimberly Tangentsson")).to_be_visible()

    await tab_to("Ändra och lägg till behörigheter", "link")
    await page.keyboard.press("Enter")
    await tab_to(STATLIG, "link")
    await page.keyboard.press("Enter")
    await tab_to("Grundersättning", "checkbox")
    await page.keyboard.press("Space")
    await tab_to("Klar")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Behörigheterna är sparade.")).to_be_visible()
    await expect(page.locator(".service li")).to_have_text(["Grundersättning"])

    await tab_to("Ta bort användare")
    await page.keyboard.press("Enter")
    await tab_to("OK")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Kimberly Tangentsson är borttagen.")).to_be_visible()

    await tab_to("Logga ut")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Du är utloggad.")).to_be_visible()


# The focus ring's colour against what lies behind the element (WCAG 2.4.11 and 1.4.11:
# at least 3:1), read from the page as the browser draws it.
RING_CONTRAST = """
element => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  let behind = element.parentElement;
  while (behind) {
    const colour = rgb(getComputedStyle(behind).backgroundColor);
    if (colour.length < 4 || colour[3] > 0) break;
    behind = behind.parentElement;
  }
  const background = behind ? rgb(getComputedStyle(behind).backgroundColor) : [255, 255, 255];
  const ring = rgb(getComputedStyle(element).outlineColor);
  const [light, dark] = [luminance(ring), luminance(background)].sort((a, b) => b - a);
  return (light + 0.05) / (dark + 0.05);
}
"""


async def test_the_focus_ring_stands_out_on_the_page_and_in_the_header(
    page: Page,
    live: Live,  # noqa: F811
) -> None:
    await log_in(page, live, STOCKHOLM_ADMIN)
    for role, name in (
        ("button", "Lägg till användare"),
        ("link", "Anna"),
        ("button", "Logga ut"),
        ("link", "Grupper"),
    ):
        target = page.get_by_role(role, name=name, exact=True)  # type: ignore[arg-type]
        for _ in range(60):
            if await target.evaluate("element => element === document.activeElement"):
                break
            await page.keyboard.press("Tab")
        assert await target.evaluate("element => element.matches(':focus-visible')")
        contrast = await target.evaluate(RING_CONTRAST)
        assert contrast >= 3, f"{role} {name}: the focus ring is {contrast:.1f}:1"
