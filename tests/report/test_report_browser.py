"""The HTML report in a real browser (headless Chromium via Selenium): it renders, the filters work,
no script from the data runs, and the page makes no network request.

Skipped, with the reason, where selenium, chromium or chromedriver is missing
(Debian: ``apt-get install chromium chromium-driver``; ``pip install selenium``).
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("jinja2", reason="the report needs jinja2 (pip install 'normcheck[report]')")
pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install 'normcheck[report]')")
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

try:  # tests/ is a package (tests/__init__.py)
    from tests.report.test_report import TOKEN, TOKEN_ROWS, synthetic_document
except ImportError:  # rootdir-relative imports
    from test_report import TOKEN, TOKEN_ROWS, synthetic_document  # type: ignore[no-redef]

from normcheck.report import write_html

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser test needs chromium and chromedriver on PATH (apt-get install chromium chromium-driver)",
)

# visible .fx rows of the checks table, by verdict (one round trip instead of one per row)
VISIBLE_ROWS = """
return Array.from(document.querySelectorAll('tr.fx'))
  .filter(function (r) { return r.checkVisibility ? r.checkVisibility() : r.getClientRects().length > 0; })
  .map(function (r) { return r.dataset.verdict; });
"""


@pytest.fixture(scope="module")
def doc():
    return synthetic_document()


@pytest.fixture(scope="module")
def report(tmp_path_factory, doc):
    return write_html(doc, tmp_path_factory.mktemp("report") / "report.html").resolve()


@pytest.fixture(scope="module")
def browser(report):
    mp = pytest.MonkeyPatch()
    mp.setenv("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    except Exception as e:  # a chromium/chromedriver version mismatch, no display libraries, ...
        mp.undo()  # both are on PATH (else the module is skipped): a driver that cannot start is a failure
        pytest.fail(f"could not start headless chromium: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        mp.undo()


@pytest.fixture
def page(browser, report):
    """The report freshly loaded (each test starts from the initial state)."""
    browser.get(report.as_uri())
    return browser


def test_loads_without_running_data_scripts(page, report):
    assert page.title == "normcheck audit report"
    assert page.execute_script("return window.__pwned === undefined")
    # the hostile markup is on the page as text
    body = page.find_element(By.TAG_NAME, "body").text
    assert "<script>alert(1)</script>" in body
    assert "héllo ✓ 日本" in body


def test_matrix_and_details_render(page, doc):
    matrix = page.find_element(By.CSS_SELECTOR, "table.matrix")
    assert matrix.is_displayed()
    cells = page.find_elements(By.CSS_SELECTOR, "table.matrix td.cell a")
    assert len(cells) == len({(r["norm"], r["framework"], r["form"]) for r in doc["records"]})
    assert all(c.is_displayed() for c in cells[:6])
    assert page.find_element(By.CSS_SELECTOR, "#counts").is_displayed()
    assert page.find_element(By.CSS_SELECTOR, "figure.dist img").is_displayed()
    ok = page.execute_script(
        "return Array.from(document.querySelectorAll('figure.dist img')).every(i => i.complete && i.naturalWidth > 0)"
    )
    assert ok, "a figure did not decode"
    card = page.find_element(By.CSS_SELECTOR, "details.card.v-fail")
    assert card.is_displayed() and card.get_attribute("open") is not None
    assert card.find_element(By.CSS_SELECTOR, "pre[id^=repro-]").is_displayed()
    # a matrix cell link opens the (collapsed) checks group it points at
    target = cells[0].get_attribute("href").split("#", 1)[1]
    group = page.find_element(By.ID, target)
    assert not group.find_element(By.CSS_SELECTOR, "table.checks").is_displayed()
    cells[0].click()
    assert group.get_attribute("open") is not None
    assert group.find_element(By.CSS_SELECTOR, "table.checks").is_displayed()


def test_copy_button(page):
    btn = page.find_element(By.CSS_SELECTOR, "details.card.v-fail button.copy")
    page.execute_script("arguments[0].scrollIntoView({block: 'center'})", btn)
    btn.click()
    WebDriverWait(page, 5).until(lambda _: btn.text != "Copy")
    assert btn.text in ("Copied", "Select and copy")


def _rows_when(page, predicate, timeout=5.0):
    """The visible rows once ``predicate(rows)`` holds (the filter reacts to input events, which
    a loaded machine may deliver late); the last rows seen if it never does (the caller's
    assertion then shows them)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    seen = []

    def ready(_):
        seen[:] = page.execute_script(VISIBLE_ROWS)
        return predicate(seen)

    try:
        WebDriverWait(page, timeout, poll_frequency=0.05).until(ready)
    except TimeoutException:
        pass
    return list(seen)


def test_filters(page, doc):
    n_fail = sum(r["verdict"] == "fail" for r in doc["records"])
    Select(page.find_element(By.ID, "f-verdict")).select_by_value("fail")
    visible = _rows_when(page, lambda rows: rows == ["fail"] * n_fail)
    assert visible == ["fail"] * n_fail
    cards = [c for c in page.find_elements(By.CSS_SELECTOR, "details.card") if c.is_displayed()]
    assert len(cards) == n_fail and all("v-fail" in c.get_attribute("class") for c in cards)
    assert page.find_element(By.ID, "f-count").text == f"{n_fail} of {len(doc['records'])} checks shown"

    Select(page.find_element(By.ID, "f-verdict")).select_by_value("")
    text = page.find_element(By.ID, "f-text")
    text.send_keys(TOKEN)
    assert len(_rows_when(page, lambda rows: len(rows) == TOKEN_ROWS)) == TOKEN_ROWS
    text.clear()
    text.send_keys("日本")
    assert len(_rows_when(page, lambda rows: len(rows) == 1)) == 1

    page.find_element(By.ID, "f-clear").click()
    Select(page.find_element(By.ID, "f-framework")).select_by_value("jax")
    Select(page.find_element(By.ID, "f-norm")).select_by_value("rms_norm")
    want = sum(r["framework"] == "jax" and r["norm"] == "rms_norm" for r in doc["records"])
    assert len(_rows_when(page, lambda rows: len(rows) == want)) == want > 0

    page.find_element(By.ID, "f-clear").click()
    assert page.find_element(By.ID, "f-count").text == f"{len(doc['records'])} checks"
    assert _rows_when(page, lambda rows: rows == []) == []  # cleared: the all-checks table is collapsed again


def test_no_network_and_no_errors(page, report):
    assert page.execute_script("return window.__pwned === undefined && document.title") == "normcheck audit report"
    urls = []
    for entry in page.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    assert report.as_uri() in urls
    assert all(u == report.as_uri() or u.startswith("data:") for u in urls), urls
    # a blocked fetch (CSP) or a script error would be logged as SEVERE
    severe = [e["message"] for e in page.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
