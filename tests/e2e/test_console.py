"""The console at `/`, in a real headless Chromium, against a live coordinator and a live agent:
list → filter → details → book → booked → release → available, a second browser seeing each
flip live, the API's errors shown as it gives them, and each role's page."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import launched
from tests.e2e.conftest import Coordinator
from tests.e2e.harness import Agent, Renter, wait_for
from tests.support import ADMIN_KEY, CLIENT2_KEY, CLIENT_KEY, MINER_KEY

GPU_TOML = """[gpu]
backend = "simulated"
price_per_hour = "0.50"

[[gpu.simulated]]
model = "NVIDIA H100 80GB HBM3"
memory_mib = 81559
count = 2
utilization_pct = [10, 40, 70]

[[gpu.simulated]]
model = "NVIDIA L4"
memory_mib = 23034
count = 1
"""
LIVE_S = 2.0  # a heartbeat or booking flip reaches an open page within this


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched() as b:
        yield b


@pytest.fixture
def market(
    coordinator: Coordinator, renter: Renter, make_agent: Callable[..., Agent]
) -> Coordinator:
    make_agent(gpu_toml=GPU_TOML).start()
    wait_for(
        "3 available GPUs",
        lambda: len([g for g in renter.gpus() if g["status"] == "available"]) == 3,
    )
    renter.credit()  # alice has money; bob has none
    return coordinator


def open_console(browser: Browser, base: str, key: str | None = None, width: int = 1280) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(base + "/")
    expect(page.locator("body[data-ready]")).to_have_count(1)
    if key is not None:
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Use").click()
    return page


def rows(page: Page) -> int:
    return page.locator("table.gpus tbody tr").count()


def test_browse_filter_book_release_and_a_second_browser_sees_it_live(
    browser: Browser, market: Coordinator
) -> None:
    watcher = open_console(browser, market.url)  # a visitor, opened before anything happens
    expect(watcher.locator("table.gpus tbody tr")).to_have_count(3)
    page = open_console(browser, market.url, CLIENT_KEY)
    expect(page.locator("#who")).to_have_text("alice (client)")
    expect(page.locator("table.gpus tbody tr")).to_have_count(3)
    for header in ("Model", "Memory", "AITBC/h", "Status"):
        expect(page.get_by_role("columnheader", name=header)).to_be_visible()

    page.get_by_label("Model").fill("L4")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.gpus tbody tr")).to_have_count(1)
    page.get_by_label("Model").fill("H100")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.gpus tbody tr")).to_have_count(2)

    page.locator("table.gpus tbody tr a").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("NVIDIA H100 80GB HBM3")
    gpu_id = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#gpu-status .badge")).to_have_text("available")
    page.get_by_label("Hours").fill("2")
    page.get_by_role("button", name="Quote").click()
    expect(page.locator("#quote")).to_contain_text(re.compile(r"\d+\.\d+ AITBC \("))

    page.get_by_role("button", name="Book").click()
    expect(page.locator("#gpu-status .badge")).to_have_text("booked")
    expect(page.locator(".booking")).to_contain_text("Booked by alice")
    booked_at = time.monotonic()
    live = watcher.locator(f'tr[data-gpu-id="{gpu_id}"] .badge')
    expect(live).to_have_text("booked", timeout=LIVE_S * 1000)
    print(f"\nbooked → the other browser shows it: {time.monotonic() - booked_at:.2f} s")

    page.get_by_role("button", name="Release").click()
    expect(page.locator("#gpu-status .badge")).to_have_text("available")
    expect(page.locator("#notice")).to_contain_text("Released; refund")
    expect(live).to_have_text("available", timeout=LIVE_S * 1000)

    page.get_by_role("link", name="My orders").click()
    expect(page.locator("main table tbody tr")).to_have_count(1)
    expect(page.locator("main table tbody tr")).to_contain_text("released")


def test_the_api_errors_are_shown_as_the_api_gives_them(
    browser: Browser, market: Coordinator
) -> None:
    bad = open_console(browser, market.url, "not-a-key-of-this-coordinator-0000")
    expect(bad.get_by_role("alert")).to_have_text("401 unauthorized: invalid API key")
    expect(bad.locator("#who")).to_have_text("visitor")

    poor = open_console(browser, market.url, CLIENT2_KEY)  # bob has no money
    poor.locator("table.gpus tbody tr a").first.click()
    poor.get_by_role("button", name="Book").click()
    expect(poor.get_by_role("alert")).to_contain_text("402 insufficient balance")

    # Someone else books it while bob's page still offers it: the API's 409, as it says it.
    rich = open_console(browser, market.url, CLIENT_KEY)
    rich.goto(poor.url)
    rich.get_by_role("button", name="Book").click()
    expect(rich.locator("#gpu-status .badge")).to_have_text("booked")
    expect(rich.get_by_role("button", name="Book")).to_have_count(0)  # no longer offered
    poor.get_by_role("button", name="Book").click()
    expect(poor.get_by_role("alert")).to_contain_text("409 conflict")
    expect(poor.get_by_role("alert")).to_contain_text("is not available (it is booked)")


def test_operator_and_admin_pages(browser: Browser, market: Coordinator) -> None:
    miner = open_console(browser, market.url, MINER_KEY)
    miner.get_by_role("link", name="My hosts").click()
    expect(miner.get_by_role("heading", level=1)).to_have_text("Host host-01")
    expect(miner.locator("main table tbody tr")).to_have_count(3)
    expect(miner.get_by_role("link", name="Admin")).to_be_hidden()

    admin = open_console(browser, market.url, ADMIN_KEY)
    admin.get_by_role("link", name="Admin").click()
    expect(admin.get_by_role("heading", name="API keys")).to_be_visible()
    admin.get_by_label("Role").select_option("client")
    admin.get_by_label("Subject").first.fill("carol")
    admin.get_by_role("button", name="Create key").click()
    expect(admin.locator("#new-key")).to_contain_text("New key (shown once):")
    expect(admin.locator("main")).to_contain_text("carol")
    admin.get_by_label("Subject").nth(1).fill("carol")
    admin.get_by_label("Amount").fill("12.5")
    admin.get_by_role("button", name="Credit").click()
    expect(admin.locator("main table").nth(1)).to_contain_text("12.50000000")


def test_a_phone_sized_screen_needs_no_sideways_scroll(
    browser: Browser, market: Coordinator
) -> None:
    page = open_console(browser, market.url, CLIENT_KEY, width=360)
    expect(page.locator("table.gpus tbody tr")).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.locator("table.gpus tbody tr a").first.click()
    expect(page.get_by_role("button", name="Book")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # Keyboard only: focus moves to the page's content on each navigation, so Tab reaches
    # its first control ("← all GPUs") and Enter follows it; Tab then reaches the filters.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "← all GPUs"
    page.keyboard.press("Enter")
    expect(page.locator("table.gpus tbody tr")).to_have_count(3)
    page.keyboard.press("Tab")
    page.keyboard.type("L4")
    page.keyboard.press("Enter")
    expect(page.locator("table.gpus tbody tr")).to_have_count(1)
