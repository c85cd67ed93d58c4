"""The Space in a real browser: Debian's Chromium, headless, driven by playwright-python (no browser download).

Needs: `apt-get install -y chromium` (/usr/bin/chromium) and `pip install playwright`.
"""

from __future__ import annotations

import shutil
import time

import pytest

from conftest_space import served, space_manifest, space_project  # noqa: F401 (fixtures)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_browser_pick_variant_and_chat(space_manifest, browser, artifacts_dir):
    from playwright.sync_api import expect

    with served(space_manifest) as (url, _, demo):
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(url)
        # the default variant loads when the page opens
        expect(page.locator("#load-status")).to_contain_text("Loaded", timeout=60_000)
        # every variant is listed with its status; pick another one
        page.get_by_label("Variant").click()
        options = page.get_by_role("option")
        labels = [options.nth(i).inner_text() for i in range(options.count())]
        assert any("Not yet — not built yet" in t for t in labels) and any("Hub model — on the Hub" in t for t in labels)
        page.get_by_role("option", name="Smol tutor — built locally").click()
        expect(page.get_by_text("SmolLM2 answering briefly.")).to_be_visible()
        expect(page.locator("#load-status")).to_contain_text("smol-tutor-q4_k_m.gguf", timeout=60_000)
        # the recipe's modes and examples are offered
        expect(page.get_by_label("explain")).to_be_visible()
        page.get_by_text("Name three colors.").click()
        box = page.locator("#message textarea")
        expect(box).to_have_value("Name three colors.")
        box.fill("What is the capital of France? Answer in a few words.")
        t0 = time.monotonic()
        box.press("Enter")
        bot = page.locator("#chat .message.bot").last
        # streamed: text appears before the reply is finished (the stats line comes last)
        expect(bot).not_to_have_text("…", timeout=60_000)
        partial_seen = "tokens/s" not in bot.inner_text()
        expect(bot).to_contain_text("tokens/s", timeout=120_000)
        text = bot.inner_text()
        assert "first token after" in text and "<|im_end|>" not in text and "<|im_start|>" not in text
        page.screenshot(path=str(artifacts_dir / "space-chat.png"), full_page=True)
        assert partial_seen or time.monotonic() - t0 < 1, "the reply did not stream"

        # a variant that is not built says how to build it, and the app keeps serving
        page.get_by_label("Variant").click()
        page.get_by_role("option", name="Not yet — not built yet").click()
        expect(page.get_by_text("iris-recipes run").first).to_be_visible()
        page.locator("#message textarea").fill("hello")
        page.locator("#message textarea").press("Enter")
        expect(page.locator("#chat .message.bot").last).to_contain_text("not built yet. Build it with", timeout=30_000)
        page.screenshot(path=str(artifacts_dir / "space-not-built.png"), full_page=True)
        expect(page.locator("#chat")).not_to_contain_text("Error")
        # an empty message gets a notice instead of a reply
        page.locator("#message textarea").fill("")
        page.locator("#message textarea").press("Enter")
        expect(page.get_by_text("Type a message first").first).to_be_visible(timeout=30_000)
