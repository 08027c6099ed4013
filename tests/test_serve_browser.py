"""The web page in a real headless Chromium (the OS package, driven by Playwright): sign up, upload two shared
photos taken on different dates, see the overlay, the regions table and a trend chart with two points.
Screenshots go to $SKIN_INFER_ARTIFACTS (default: artifacts/ in the repository) for CI to keep."""

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
from shared_data import FACES  # noqa: E402
from test_serve import free_port, start_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SKIN_INFER_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no system Chromium (apt-get install -y chromium)")
def test_sign_up_upload_twice_and_see_the_trend(tmp_path):
    port = free_port()
    server = start_server(tmp_path / "web.sqlite3", port)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#username", "erin")
            page.fill("#password", "correct horse battery")
            page.click("#signup")
            page.wait_for_selector("#app:not(.hidden)")
            assert page.get_attribute("#file", "capture") == "user"  # phones open the camera
            for photo, day in (
                ("fairface_Latino_aligned.jpg", "2026-04-01"),
                ("fairface_White_aligned.jpg", "2026-05-01"),
            ):
                page.set_input_files("#file", str(FACES / "photos" / photo))
                page.fill("#taken-at", day)
                with page.expect_response(
                    lambda r: r.url.endswith("/api/analyses") and r.request.method == "POST"
                ) as r:
                    page.click("#analyse")
                assert r.value.status == 201
                page.wait_for_selector("#result:not(.hidden)")
                page.wait_for_function("document.querySelector('#overlay').naturalWidth > 0")
                page.screenshot(path=str(ARTIFACTS / f"serve-result-{day}.png"), full_page=True)
            rows = page.locator("#regions tbody tr")
            assert rows.count() == 6 and "face_skin" in rows.nth(5).inner_text()
            page.select_option("#measure", "face_skin.ita_deg")
            page.wait_for_function("document.querySelectorAll('#trend-svg circle.point').length === 2")
            dates = page.locator("#trend-svg text").all_text_contents()
            assert "2026-04-01" in dates and "2026-05-01" in dates
            assert page.locator("#history li").count() == 2
            page.screenshot(path=str(ARTIFACTS / "serve-trend.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (ARTIFACTS / "serve-trend.png").stat().st_size > 10_000
