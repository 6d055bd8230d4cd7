"""The static HTML leaderboard, in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium):
pages load without console errors, sorting and filtering work, every link and image resolves, and hostile strings
from records and reference files render as text. Plus the escaping and link rules without a browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from test_report import make_record

from suite.cli import main
from suite.records import SCHEMA, SCHEMA_VERSION, write_record
from suite.site import plot_names, slug, source_html, write_site
from suite.site_browser import find_browser, headless_chrome, screenshot_pages
from suite.specs import RunSpec

HOSTILE = "<script>window.__pwned = 1</script>\"'><img src=x onerror=\"window.__pwned = 2\">"
HOSTILE_REFS = """\
entries:
  - {protocol: gsc, method: "Published <b>bold</b> <script>window.__pwned = 3</script>", variant: null,
     metric: test_acc_reported, value: 96.5, source: "Someone, arXiv:2306.17670 <a href='javascript:alert(1)'>x</a>",
     status: secondary, selection: best-test-epoch, note: "note with \\"quotes\\" & <i>markup</i>"}
  - {protocol: gsc, method: "Clean method", variant: null, metric: test_acc_reported, value: 80.0,
     source: "doi:10.3389/fnins.2022.865897", status: quoted, selection: best-valid}
"""
CLAIMS = """\
claims:
  - {id: beats, claim: "delays <em>help</em>", source: "paper arXiv:2602.09746", a: axonal, relation: greater,
     b: no-delay, metric: test_acc_at_best_valid}
"""


def _hostile_record(out: Path) -> Path:
    """A schema-valid record whose free-text fields carry markup and a script."""
    spec = RunSpec(variant="axonal", protocol="gsc", seed=7, overrides={"note": HOSTILE})
    record = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "spec": spec.to_dict(),
        "label": HOSTILE, "protocol": {"name": "gsc", "version": 1, "embedded": False},
        "model_spec": {"variant": "axonal", "delay_type": "axonal", "kernel_size": 31, "description": HOSTILE},
        "environment": {"host": HOSTILE, "python": "3.12"}, "created": "2026-01-02T00:00:00",
        "history": [{"valid_acc": 0.5 + 0.1 * i, "train_acc": 0.4 + 0.1 * i} for i in range(4)],
        "metrics": {"test_acc_at_best_valid": 0.91, "test_acc_last_epoch": 0.9, "best_valid_acc": 0.92},
    }
    path = out / "records" / "hostile.json"
    write_record(path, record)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A results directory with three variants, a hostile record and hostile references, rendered by the CLI."""
    base = tmp_path_factory.mktemp("site")
    results, refs = base / "results", base / "refs"
    refs.mkdir()
    (refs / "lit.yaml").write_text(HOSTILE_REFS)
    (refs / "claims.yaml").write_text(CLAIMS)
    for seed, acc in enumerate((0.90, 0.92, 0.95)):
        make_record(results, "axonal", seed, acc, params_trainable=567336, buffer_allocated_bits=1000)
    for seed, acc in enumerate((0.80, 0.84, 0.82)):
        make_record(results, "synaptic", seed, acc, params_trainable=1128448, buffer_allocated_bits=90000)
    for seed, acc in enumerate((0.20, 0.21, 0.22)):
        make_record(results, "no-delay", seed, acc, params_trainable=300000, buffer_allocated_bits=0)
    _hostile_record(results)
    out = base / "html"
    assert main(["leaderboard", str(results), "--html", str(out), "--references", str(refs)]) == 0
    return out, sorted(out.glob("*.html"))


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(found["id"] or "")
        if tag == "a" and found.get("href"):
            self.links.append(found["href"] or "")
        if tag == "img":
            self.images.append(found.get("src") or "")
        if tag == "script":
            self.scripts += 1


def _parse(path: Path) -> _Collector:
    collector = _Collector()
    collector.feed(path.read_text())
    return collector


def test_pages_written_and_hostile_strings_escaped(site: tuple[Path, list[Path]]) -> None:
    out, pages = site
    names = {p.name for p in pages}
    assert {"index.html", "protocol-gsc.html", "method-axonal.html", "method-synaptic.html",
            "method-no-delay.html"} <= names
    for page in pages:
        text = page.read_text()
        assert _parse(page).scripts == 1, page  # only our own inline script
        assert "<script>window.__pwned" not in text and "<img src=x" not in text and "<b>bold</b>" not in text
        assert not any(link.startswith("javascript:") for link in _parse(page).links)
        assert all(not urlsplit(src).scheme for src in _parse(page).images)  # nothing fetched from a network
        assert "<link" not in text.replace('<link rel="icon" href="data:,">', "") and "@import" not in text
    board = (out / "protocol-gsc.html").read_text()
    assert "&lt;script&gt;window.__pwned = 3&lt;/script&gt;" in board
    assert "note with &quot;quotes&quot; &amp; &lt;i&gt;markup&lt;/i&gt;" in board
    assert '<a href="https://arxiv.org/abs/2306.17670" rel="noopener">arXiv:2306.17670</a>' in board
    assert '<a href="https://doi.org/10.3389/fnins.2022.865897"' in board
    assert "96.50 †" in board and "† best test accuracy over epochs (leaks the test set)" in board
    assert "80.00 †" not in board
    method = (out / "method-axonal.html").read_text()
    assert "one learnable delay per presynaptic neuron, before the weights (delay type axonal, from suite)" in method
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&quot;&#x27;&gt;&lt;img src=x" in method
    assert (out / "plots" / "gsc_acc_vs_params.png").read_bytes()[:4] == b"\x89PNG"


def test_source_links_and_slugs() -> None:
    assert source_html("x, arXiv:2509.24852 and Thvnvtos/SNN-delays@84fa166 best_config_SSC.py") == (
        'x, <a href="https://arxiv.org/abs/2509.24852" rel="noopener">arXiv:2509.24852</a> and '
        '<a href="https://github.com/Thvnvtos/SNN-delays/tree/84fa166" rel="noopener">Thvnvtos/SNN-delays@84fa166</a>'
        " best_config_SSC.py")
    assert source_html("<a href='javascript:alert(1)'>") == "&lt;a href=&#x27;javascript:alert(1)&#x27;&gt;"
    assert slug("axonal-sparse") == "axonal-sparse"
    hostile = slug("../../etc/passwd")
    assert re.fullmatch(r"etc-passwd-[0-9a-f]{8}", hostile) and slug("../../etc/passwd") != slug("etc/passwd")


def test_plot_names_keep_protocols_apart(tmp_path: Path) -> None:
    for name in ("leaderboard_gsc_acc_vs_params.png", "leaderboard_gsc_seeds.png", "leaderboard_gsc_x_seeds.png",
                 "leaderboard_gsc-mini_seeds.png", "leaderboard_gsc.csv"):
        (tmp_path / name).write_bytes(b"")
    assert plot_names(tmp_path, "gsc", ["gsc", "gsc_x", "gsc-mini"]) == ["acc_vs_params", "seeds"]
    assert plot_names(tmp_path, "gsc_x", ["gsc", "gsc_x"]) == ["seeds"]
    assert plot_names(tmp_path / "missing", "gsc", ["gsc"]) == []


def test_site_without_plots_warns(tmp_path: Path) -> None:
    results = tmp_path / "r"
    make_record(results, "axonal", 0, 0.9)
    written, warnings = write_site(results, tmp_path / "html", tmp_path)
    assert (tmp_path / "html" / "index.html") in written
    assert any("no plots" in w for w in warnings)
    assert "no plots" in (tmp_path / "html" / "index.html").read_text()


def test_html_target_that_is_a_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "r"
    make_record(results, "axonal", 0, 0.9)
    (tmp_path / "taken").write_text("not a directory")
    assert main(["leaderboard", str(results), "--html", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: --html {tmp_path / 'taken'}: exists and is " \
        "not a directory"


# ------------------------------------------------------------------------------------------------- real browser
@pytest.fixture(scope="module")
def browser() -> Any:
    if find_browser() is None:
        pytest.skip("no Chromium browser and chromedriver installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="selenium is not installed (dev extra)")
    driver = headless_chrome()
    yield driver
    driver.quit()


def _column(driver: Any, table_id: str, header: str) -> list[str]:
    from selenium.webdriver.common.by import By

    table = driver.find_element(By.ID, table_id)
    headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    col = headers.index(header)
    return [row.find_elements(By.TAG_NAME, "td")[col].get_attribute("data-value")
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_browser_pages_load_clean_links_resolve_and_hostile_text_shows(site: tuple[Path, list[Path]],
                                                                       browser: Any) -> None:
    from selenium.webdriver.common.by import By

    out, pages = site
    for page in pages:
        browser.get(page.as_uri())
        logs = browser.get_log("browser")
        assert logs == [], (page.name, logs)
        assert browser.execute_script("return window.__pwned === undefined"), page.name
        for img in browser.find_elements(By.TAG_NAME, "img"):
            assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img), \
                (page.name, img.get_attribute("src"))
        parsed = _parse(page)
        for href in parsed.links:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https"):
                assert parts.scheme == "https" and parts.netloc in ("arxiv.org", "doi.org", "github.com"), href
                continue
            target = (page.parent / unquote(parts.path)) if parts.path else page
            assert target.is_file(), (page.name, href)
            if parts.fragment:
                assert parts.fragment in _parse(target).ids, (page.name, href)
    browser.get((out / "method-axonal.html").as_uri())
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "<script>window.__pwned = 1</script>" in browser.page_source.replace("&lt;", "<").replace("&gt;", ">")
    browser.find_element(By.TAG_NAME, "details").click()  # the model spec, with the hostile description as text
    assert "<script>window.__pwned = 1</script>" in browser.find_element(By.TAG_NAME, "body").text
    assert "seed 0 valid" in browser.page_source or "svg" in browser.page_source
    assert "run id" in body


def test_browser_sorting_and_filtering(site: tuple[Path, list[Path]], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    out, _ = site
    browser.get((out / "protocol-gsc.html").as_uri())
    table_id = "board-gsc"
    header = next(th for th in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")
                  if th.text == "test acc %")
    header.click()
    values = _column(browser, table_id, "test acc %")
    present = [float(v) for v in values if v]
    assert present == sorted(present) and len(present) >= 5
    assert all(values[: len(present)]) and not any(values[len(present):])  # missing values last
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    present = [float(v) for v in _column(browser, table_id, "test acc %") if v]
    assert present == sorted(present, reverse=True) and header.get_attribute("aria-sort") == "descending"
    method_header = next(th for th in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")
                         if th.text == "method")
    method_header.click()
    methods = _column(browser, table_id, "method")
    assert methods == sorted(methods, key=str.lower) or methods == sorted(methods)

    box = browser.find_element(By.CSS_SELECTOR, f"input.filter[data-table='{table_id}']")
    total = len(browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr"))
    box.send_keys("synaptic")
    visible = [r for r in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr") if r.is_displayed()]
    assert len(visible) == 1 and "synaptic" in visible[0].text
    assert browser.find_element(By.ID, f"{table_id}-count").text == f"1 of {total} rows"
    box.clear()
    box.send_keys("NOSUCHTHING")
    assert not any(r.is_displayed() for r in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr"))
    for _ in range(len("NOSUCHTHING")):
        box.send_keys("\b")
    assert all(r.is_displayed() for r in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr"))
    claims = browser.find_element(By.ID, "claims-gsc").text
    assert "beats" in claims and "PASS" in claims and "delays <em>help</em>" in claims
    assert browser.get_log("browser") == []


def test_screenshots_of_every_page(site: tuple[Path, list[Path]], browser: Any, tmp_path: Path) -> None:
    _, pages = site
    written = screenshot_pages(pages, tmp_path / "shots")
    assert [p.name for p in written] == [f"{p.stem}.png" for p in pages]
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 1000 and height >= 300, (path.name, width, height)
