"""The web page in a real headless Chromium (the OS package, driven by Playwright), at a phone's and a laptop's
width: sign up (a short password first: a sentence, not JSON), upload three shared photos taken on different
dates, read the chart (dated axis, units, human names), delete one, export, log out (the old token is then
refused by the server), and /docs rendering with no network. No horizontal overflow at either width.
Screenshots go to $SKIN_INFER_ARTIFACTS (default: artifacts/ in the repository) for CI to keep."""

import os
import shutil
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
from shared_data import FACES  # noqa: E402
from test_serve import free_port, start_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SKIN_INFER_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
PHOTOS = (("fairface_Latino_aligned.jpg", "2026-04-01"), ("fairface_White_aligned.jpg", "2026-05-01"),
          ("fairface_Black_aligned.jpg", "2026-06-01"))  # fmt: skip


def no_overflow(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )


def no_raw_json(page) -> None:
    text = page.locator("body").inner_text()
    assert '{"' not in text and '[{"' not in text and '"loc"' not in text, text[:500]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    proc = start_server(tmp_path_factory.mktemp("web") / "web.sqlite3", port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no system Chromium (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [390, 1280])
def test_a_user_tracks_photos_at_phone_and_laptop_width(server, width):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())  # the confirms before deleting
        page.goto(f"{server}/")
        name = f"erin{width}"
        page.fill("#username", name)
        page.fill("#password", "short")
        page.click("#signup")
        expect(page.locator("#auth-message")).to_have_text("password: 8 to 256 characters")
        no_raw_json(page)
        page.fill("#password", "correct horse battery")
        page.click("#signup")
        page.wait_for_selector("#app:not(.hidden)")
        assert page.inner_text("#auth-message") == ""  # the earlier error does not stay on screen
        token = page.evaluate("sessionStorage.getItem('token')")
        assert page.get_attribute("#file", "capture") == "user"  # phones open the camera
        for photo, day in PHOTOS:
            page.set_input_files("#file", str(FACES / "photos" / photo))
            page.fill("#taken-at", day)
            with page.expect_response(lambda r: r.url.endswith("/api/analyses") and r.request.method == "POST") as r:
                page.click("#analyse")
            assert r.value.status == 201
            expect(page.locator("#result-date")).to_contain_text(day)
        rows = page.locator("#regions tbody tr")
        assert rows.count() == 6 and "face skin" in rows.nth(5).inner_text()
        no_overflow(page)
        page.screenshot(path=str(ARTIFACTS / f"serve-result-{width}.png"), full_page=True)
        # the chart: human names in groups, a dated axis, a unit, one or several measures
        labels = page.locator("#measure option").all_text_contents()
        assert "redness index, face skin (% of skin redder than its own baseline)" in labels
        assert not any("face_skin." in label for label in labels)
        expect(page.locator(".trend-svg circle.point")).to_have_count(3)
        ticks = page.locator(".trend-svg text.x-tick").all_text_contents()
        assert ticks[0] == "2026-04-01" and "2026-06-01" in ticks
        assert page.locator(".trend-svg text.y-tick").count() >= 3
        assert "(% of skin redder than its own baseline)" in page.inner_text(".chart h3")
        page.select_option("#measure", ["face_skin.redness_index", "face_skin.ita_deg"])
        assert page.locator(".trend-svg").count() == 2
        no_overflow(page)
        page.screenshot(path=str(ARTIFACTS / f"serve-trend-{width}.png"), full_page=True)
        # history entries are links; delete one from the page
        links = page.locator("#history a")
        assert links.count() == 3 and links.first.get_attribute("href").startswith("#analysis-")
        links.first.click()
        expect(page.locator("#result-date")).to_contain_text("2026-06-01")
        page.click("#delete")
        expect(page.locator("#history a")).to_have_count(2)
        assert "deleted" in page.inner_text("#app-message")
        with page.expect_download() as download:
            page.click("#export-csv")
        assert download.value.suggested_filename == "skin-infer-history.csv"
        no_raw_json(page)
        no_overflow(page)
        page.click("#logout")
        page.wait_for_selector("#auth:not(.hidden)")
        browser.close()
    # logging out logged out: the server refuses the old token
    assert httpx.get(f"{server}/api/analyses", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no system Chromium (apt-get install -y chromium)")
def test_api_docs_render_with_no_network(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        outside = []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server)
                   else (outside.append(route.request.url), route.abort()))  # fmt: skip
        page.goto(f"{server}/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
        assert "/api/analyses" in page.inner_text(".swagger-ui")
        assert outside == []
        page.screenshot(path=str(ARTIFACTS / "serve-docs.png"))
        browser.close()
