"""The browser page (`GET /`) in a real headless Chromium (Debian's, driven by
Playwright): it loads without the token and asks for it, classifies a shipped sample
chosen through the file input, streams a generation, compares sentences, and shows the
server's metrics updating every second. Each test writes a screenshot under its tmp dir.
"""

from __future__ import annotations

import fnmatch
import shutil
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.live_server import DEMO_REPOSITORY, PROJECT_ROOT, SAMPLES, LiveServer
from tests.server.text_models import MINILM

TOKEN = "page-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    repo = tmp_path_factory.mktemp("page-models")
    for model in (DEMO_REPOSITORY / "shapes", DEMO_REPOSITORY / "docgen", MINILM):
        (repo / model.name).symlink_to(model, target_is_directory=True)
    with LiveServer([repo], "--auth-token", TOKEN, wait_ready=False) as live:
        live.wait_ready(90, headers=AUTH)
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("the page tests need Debian's chromium: `make test` installs it as root")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"the page's script failed: {errors}"


def open_with_token(page: Page, server: LiveServer, model: str) -> None:
    page.goto(f"{server.url}/#model={model}")
    page.fill("#token", TOKEN)
    page.click("#token-form button")
    expect(page.locator("#model")).to_have_value(model)


def raw_status(server: LiveServer, path: str) -> int:
    """The status of a GET of `path` exactly as written (HTTP clients tidy up `..`)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])


def test_the_page_loads_without_the_token_and_asks_for_it(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    # The page and its files need no token; the API still does, and POST / is no way in.
    for path in ("/", "/page/app.js", "/page/style.css", "/page/favicon.svg"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.post(f"{server.url}/").status_code == 401
    assert raw_status(server, "/page/../v1/models") == 401  # as sent, not normalised
    assert raw_status(server, "/page/%2e%2e/v1/models") == 401
    home = httpx.get(f"{server.url}/")
    assert "script-src" not in home.headers["content-security-policy"]  # 'self' only
    assert "default-src 'self'" in home.headers["content-security-policy"]

    page.goto(server.url)
    expect(page.locator("#notice")).to_contain_text("needs a token")
    expect(page.locator("#server-status")).to_have_text("token needed")
    page.fill("#token", TOKEN)
    page.click("#token-form button")
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#server-status")).to_have_text("ready")
    names = page.locator("#model option").all_inner_texts()
    assert names == ["docgen", "minilm", "shapes"]
    expect(page.locator("#server-version")).to_contain_text("batchserve")
    page.screenshot(path=tmp_path / "page-loaded.png", full_page=True)


@pytest.mark.parametrize("sample", ["red_circle", "blue_star", "green_triangle"])
def test_an_image_chosen_through_the_file_input_shows_its_label_on_top(
    page: Page, server: LiveServer, tmp_path: Path, sample: str
) -> None:
    open_with_token(page, server, "shapes")
    expect(page.locator("#model-kind")).to_have_text("image classifier")
    page.set_input_files("#image-file", SAMPLES / f"{sample}.jpg")
    top = page.locator("#predictions li").first
    expect(top.locator(".label")).to_have_text(sample.replace("_", " "))
    expect(page.locator("#predictions li")).to_have_count(5)
    score = float(top.locator(".score").inner_text().rstrip("%"))
    assert score > 50
    timings = page.locator("#image-timings").inner_text()
    assert "inference" in timings and "decode" in timings and "batch 1" in timings
    assert page.locator("#preview").evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=tmp_path / f"page-image-{sample}.png", full_page=True)


def test_a_generation_streams_into_the_page(page: Page, server: LiveServer, tmp_path: Path) -> None:
    open_with_token(page, server, "docgen")
    prompt = "class Path:\n"
    page.fill("#prompt", prompt)
    page.fill("#max-tokens", "400")
    # Record the text's length at every change the browser makes to it.
    page.evaluate(
        """() => {
            window.lengths = [];
            const text = document.getElementById("generation-text");
            new MutationObserver(() => window.lengths.push(text.textContent.length))
                .observe(text, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.click("#generate")
    expect(page.locator("#generation-stats")).to_contain_text("finish", timeout=30_000)
    lengths = [n for n in page.evaluate("window.lengths") if n > 0]
    assert len(set(lengths)) >= 5, lengths  # it grew piece by piece, not in one block
    assert lengths == sorted(lengths)
    text = page.locator("#generation-text").inner_text()
    whole = httpx.post(
        f"{server.url}/v1/models/docgen/generate",
        json={"prompt": prompt, "max_tokens": 400},
        headers=AUTH,
        timeout=30,
    ).json()["text"]
    assert text == whole  # greedy: the streamed text is the generation's
    expect(page.locator("#generate")).to_be_enabled()
    page.screenshot(path=tmp_path / "page-generation.png", full_page=True)


def test_sentences_are_compared_by_cosine_similarity(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    open_with_token(page, server, "minilm")
    page.fill(
        "#sentences",
        "A man is playing a guitar.\nSomeone is strumming a guitar.\nHow do I reset my password?",
    )
    page.click("#compare")
    cells = page.locator("#matrix tr").nth(1).locator("td")
    expect(cells).to_have_count(3)
    first_row = [float(v) for v in cells.all_inner_texts()]
    assert first_row[0] == 1.0
    assert first_row[1] > 0.5 > first_row[2]  # the paraphrase is close, the other far
    expect(page.locator("#embed-stats")).to_contain_text("closest 1 & 2")
    page.screenshot(path=tmp_path / "page-embeddings.png", full_page=True)


def test_the_metrics_panel_updates_every_second(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    open_with_token(page, server, "shapes")
    updated = page.locator("#metrics-updated")
    expect(updated).to_contain_text("live")
    start = int(updated.get_attribute("data-count") or 0)
    total = page.locator("#m-total")
    expect(total).not_to_have_text("–")
    before = int(total.inner_text())
    image = (SAMPLES / "red_cross.jpg").read_bytes()
    url = f"{server.url}/v1/models/shapes/predict"
    headers = {**AUTH, "content-type": "image/jpeg"}
    for _ in range(12):
        assert httpx.post(url, content=image, headers=headers, timeout=30).status_code == 200
    expect(total).to_have_text(str(before + 12), timeout=5_000)
    assert float(page.locator("#m-rps").inner_text()) > 0  # the 12 are in its 5 s window
    page.wait_for_function(
        "(n) => Number(document.getElementById('metrics-updated').dataset.count) >= n",
        arg=start + 3,
    )
    for tile in ("#m-p50", "#m-p99"):
        assert page.locator(tile).inner_text().endswith(("ms", "s")), tile
    assert page.locator("#m-rss").inner_text().endswith("MB")
    rows = page.locator("#m-models tbody tr").all_inner_texts()
    assert any(row.startswith("shapes v1") for row in rows), rows
    page.screenshot(path=tmp_path / "page-metrics.png", full_page=True)


def test_the_page_fits_a_phone(browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    open_with_token(phone, server, "shapes")
    phone.set_input_files("#image-file", SAMPLES / "yellow_square.jpg")
    expect(phone.locator("#predictions li .label").first).to_have_text("yellow square")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the screen: no sideways scrolling
    phone.screenshot(path=tmp_path / "page-phone.png", full_page=True)
    context.close()


def test_every_file_of_the_page_is_package_data() -> None:
    """An editable install serves the source tree; a wheel only what pyproject names."""
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["batchserve.server"]
    folder = PROJECT_ROOT / "src" / "batchserve" / "server"
    files = [p.relative_to(folder).as_posix() for p in (folder / "page").iterdir()]
    assert "page/index.html" in files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert missing == [], f"not installed by a wheel: {missing}"
