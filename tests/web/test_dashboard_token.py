"""The dashboard with ``auth.readers``: it asks for a token, refuses a wrong one, and a cluster-limited
reader's token shows that reader's clusters only (in real Chromium, against an in-process manager)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright, expect

from .conftest import CHROMIUM_ARGS, READERS, Served


@pytest.fixture
def web_options() -> dict[str, Any]:
    return {"auth": {"readers": READERS}}


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page(viewport={"width": 1280, "height": 800})
        finally:
            await browser.close()


async def test_token_asked_and_kept_for_the_tab(served: Served, page: Page) -> None:
    await page.goto(served.url + "/")
    form = page.locator("#token-form")
    await expect(form).to_be_visible(timeout=15_000)
    await page.fill("#token-input", "not-a-reader")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-error")).to_have_text(re.compile("refused"), timeout=15_000)

    await page.fill("#token-input", "east-reader-token")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator('#clusters tr[data-cluster="east"]')).to_have_count(1, timeout=15_000)
    await expect(page.locator("#clusters tbody tr")).to_have_count(1)  # west is not this reader's
    assert await page.evaluate("sessionStorage.getItem('navigator-token')") == "east-reader-token"

    await page.goto(served.url + "/#/service/shop/web")
    await expect(page.locator(".service-cluster")).to_have_count(1, timeout=15_000)
    await expect(page.locator('.service-cluster[data-cluster="east"] h3 .badge')).to_have_text("2/2 ready")

    await page.click("#sign-out")
    await expect(form).to_be_visible(timeout=15_000)
