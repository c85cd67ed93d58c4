"""The Space in a real browser: Debian's Chromium, headless, driven by playwright-python (no browser download).

Needs: `apt-get install -y chromium` (/usr/bin/chromium) and `pip install playwright`.
"""

from __future__ import annotations

import shutil

import pytest

from conftest_space import served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.slow

# Installs a MutationObserver that keeps the text of the last bot message after every DOM change.
_RECORD_REPLY_STATES = """() => {
  window.__replyStates = [];
  const chat = document.querySelector('#chat');
  new MutationObserver(() => {
    const bots = chat.querySelectorAll('.message.bot');
    if (bots.length) window.__replyStates.push(bots[bots.length - 1].innerText);
  }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def _last_reply_tokens(model) -> int:
    """Tokens the model generated for its last reply: those in its context after the last assistant header."""
    ids = model.llm.input_ids[: model.llm.n_tokens].tolist()
    header = model.llm.tokenize(b"<|im_start|>assistant\n", add_bos=False, special=True)
    starts = [i for i in range(len(ids) - len(header) + 1) if ids[i : i + len(header)] == header]
    assert starts, "no assistant turn in the model's context"
    return len(ids) - starts[-1] - len(header)


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
        assert any("Not yet — not built yet" in t for t in labels) and any(
            "Hub model — on the Hub" in t for t in labels
        )
        page.get_by_role("option", name="Smol tutor — built locally").click()
        expect(page.get_by_text("SmolLM2 answering briefly.")).to_be_visible()
        expect(page.locator("#load-status")).to_contain_text("smol-tutor-q4_k_m.gguf", timeout=60_000)
        # the recipe's modes and examples are offered
        expect(page.get_by_label("explain")).to_be_visible()
        page.get_by_text("Name three colors.").click()
        box = page.locator("#message textarea")
        expect(box).to_have_value("Name three colors.")
        box.fill("What is the capital of France? Answer in a few words.")
        # record every state the reply passes through: a short reply can finish between two polls of the test
        page.evaluate(_RECORD_REPLY_STATES)
        box.press("Enter")
        bot = page.locator("#chat .message.bot").last
        expect(bot).to_contain_text("tokens/s", timeout=120_000)
        text = bot.inner_text()
        assert "first token after" in text and "<|im_end|>" not in text and "<|im_start|>" not in text
        page.screenshot(path=str(artifacts_dir / "space-chat.png"), full_page=True)
        # streamed: the page showed part of the answer before the stats line that ends a reply
        states = page.evaluate("window.__replyStates")
        partial = [s for s in states if s.strip() not in ("", "…") and "tokens/s" not in s]
        assert partial, f"the reply did not stream; states seen: {states[-5:]}"

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


def test_browser_voice_compare_and_variant_switch_during_a_reply(space_manifest, speech_wavs, browser, artifacts_dir):
    import re

    from playwright.sync_api import expect

    with served(space_manifest, MAX_MODELS=2) as (url, _, demo):
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(url)
        expect(page.locator("#load-status")).to_contain_text("Loaded", timeout=60_000)
        page.get_by_label("Variant").click()
        page.get_by_role("option", name="Smol tutor — built locally").click()
        expect(page.locator("#load-status")).to_contain_text("smol-tutor-q4_k_m.gguf", timeout=60_000)

        # voice: an uploaded recording becomes the (editable) message
        page.locator("#voice input[type=file]").set_input_files(str(speech_wavs["speech"]))
        expect(page.locator("#voice-status")).to_contain_text("Transcribed", timeout=90_000)
        box = page.locator("#message textarea")
        expect(box).to_have_value(re.compile(r"three.*rainbow"))

        # compare: the base model answers beside the variant, same message
        page.locator("#compare input[type=checkbox]").check()
        expect(page.locator("#base-chat")).to_be_visible()
        box.press("Enter")
        for chat_id in ("#chat", "#base-chat"):
            expect(page.locator(f"{chat_id} .message.bot").last).to_contain_text("tokens/s", timeout=120_000)
            expect(page.locator(f"{chat_id} .message.user").last).to_contain_text("rainbow")
        page.screenshot(path=str(artifacts_dir / "space-voice-compare.png"), full_page=True)

        # switching the variant during a reply stops it; the new variant starts a new conversation
        page.locator("#compare input[type=checkbox]").uncheck()
        page.locator("#max-new input[type=number]").fill("400")
        page.locator("#max-new input[type=number]").press("Enter")
        page.evaluate(_RECORD_REPLY_STATES)
        page.get_by_label("explain").check()
        box.fill("Count from 1 to 200, separated by commas.")
        box.press("Enter")
        # a few words of the reply are on the page (not Gradio's two-word "Loading content"), and it is still running
        page.wait_for_function(
            "window.__replyStates.some(s => s.trim().split(/\\s+/).length >= 4 && !s.includes('tokens/s'))",
            timeout=120_000,
        )
        page.get_by_label("Variant").click()
        page.get_by_role("option", name="Smol pirate — built locally").click()
        expect(page.locator("#load-status")).to_contain_text("smol-pirate", timeout=60_000)
        expect(page.locator("#chat .message")).to_have_count(0)
        page.wait_for_timeout(1500)  # a reply that was not stopped would write into the chat again now
        expect(page.locator("#chat .message")).to_have_count(0)
        # Its reply of up to 400 tokens stopped: the model is free, and its context holds well under 400 new tokens
        # (a reply left running reaches 399). It is still loaded (the pirate took the slot of the base model, idle for
        # longer), so both can be read.
        assert demo.iris_pool.loaded() == ["smol-tutor", "smol-pirate"]
        tutor = demo.iris_pool.get("smol-tutor")
        for _ in range(150):  # the stopped reply lets go of its model once Gradio has cancelled it
            if tutor.users == 0:
                break
            page.wait_for_timeout(200)
        assert tutor.users == 0
        assert _last_reply_tokens(tutor) < 300
        box.fill("Hello!")
        box.press("Enter")
        expect(page.locator("#chat .message.bot").last).to_contain_text("tokens/s", timeout=120_000)
        expect(page.locator("#chat .message.bot")).to_have_count(1)
        expect(page.locator("#chat")).not_to_contain_text("Count from 1")
        page.screenshot(path=str(artifacts_dir / "space-switch.png"), full_page=True)
        assert demo.iris_pool.peak <= 2
