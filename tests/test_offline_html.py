"""The project's HTML works with no network: `dvc plots show` (through the template .dvc/config
names) draws its Vega charts, and the Data Docs draw their results tables, in Debian's chromium
with every request that is not a local file refused."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fmnist.data.formats import CLASS_NAMES
from fmnist.data.offline_docs import LOCAL_COPIES, VENDORED
from fmnist.data.validation import run_validation
from tests.conftest import REPO_ROOT, git
from tests.test_validate import PARAMS, make_frames

SCREENSHOTS = os.environ.get("FMNIST_OFFLINE_SCREENSHOTS")  # also save the screenshots there
PLOTS_TEMPLATE = Path("fmnist/web/dvc_plots.html")

pytestmark = pytest.mark.slow

# Ink and colours of every pixel a Vega canvas drew (near-white counts as background).
CANVAS_INK = """canvas => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    const colours = new Set();
    for (let i = 0; i < pixels.length; i += 4) {
        const [r, g, b, a] = pixels.slice(i, i + 4);
        if (a > 0 && !(r > 240 && g > 240 && b > 240)) {
            inked += 1;
            colours.add(`${r >> 4},${g >> 4},${b >> 4}`);
        }
    }
    return {inked, share: inked / (canvas.width * canvas.height), colours: colours.size};
}"""


class OfflinePage:
    """A page that may load local files only; it records what it tried beyond them, what
    failed to load and the script errors it hit."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.refused: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._local_only)
        self.page.on("requestfailed", lambda request: self.failed.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _local_only(self, route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("internetdisconnected")

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri())  # returns once the page and its files have loaded

    def assert_self_contained(self) -> None:
        assert self.refused == [], "the page asked the network for these"
        # GX's favicon link points one folder too high on result pages: a missing local icon.
        missing = [url for url in self.failed if not url.endswith("favicon.ico")]
        assert missing == [], "these local files are missing"
        assert self.errors == [], "the page's scripts failed"

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)
        if SCREENSHOTS:
            shutil.copy(path, Path(SCREENSHOTS) / path.name)


def write_plot_data(root: Path) -> None:
    """Small files in the layout train and evaluate write, for the project's plot definitions."""
    rng = np.random.default_rng(0)
    metrics = root / "metrics"
    metrics.mkdir()
    epochs = np.arange(1, 7)
    pd.DataFrame({"epoch": epochs, "accuracy": 1 - 0.5 / epochs, "loss": 1 / epochs,
                  "val_accuracy": 0.95 - 0.5 / epochs, "val_loss": 1.1 / epochs}
                 ).to_csv(metrics / "train_history.csv", index=False)
    actual = rng.choice(CLASS_NAMES, size=300)
    wrong = rng.random(300) < 0.2
    predicted = np.where(wrong, rng.choice(CLASS_NAMES, size=300), actual)
    pd.DataFrame({"actual": actual, "predicted": predicted}).to_csv(
        metrics / "test_predictions.csv", index=False)
    pairs = pd.DataFrame({"actual": actual[wrong], "predicted": predicted[wrong]})
    pairs = pairs[pairs.actual != pairs.predicted].value_counts().head(5).reset_index()
    pairs.insert(0, "pair", pairs.actual + " -> " + pairs.predicted)
    pairs.to_csv(metrics / "confused_pairs.csv", index=False)


def test_dvc_plots_show_draws_every_chart_offline(tmp_path, browser):
    root = tmp_path / "repo"
    root.mkdir()
    git("init", "-q", cwd=root)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True, timeout=120)
    # The project's own DVC config and plot definitions, and the template where the config says.
    shutil.copy(REPO_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    (root / PLOTS_TEMPLATE).parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / PLOTS_TEMPLATE, root / PLOTS_TEMPLATE)
    plots = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["plots"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    write_plot_data(root)

    shown = subprocess.run(["dvc", "plots", "show"], cwd=root, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    html_file = root / "dvc_plots" / "index.html"
    html = html_file.read_text()
    assert "<script src=" not in html  # nothing to fetch: the libraries are in the page
    charts = re.findall(r"vegaEmbed\('#(\w+)'", html)
    assert "Confusion_matrix__test_" in charts and len(charts) >= 3

    offline = OfflinePage(browser)
    offline.open(html_file)
    drawn = offline.page.locator(".vega-embed canvas")  # Vega-Embed's default renderer
    drawn.nth(len(charts) - 1).wait_for(timeout=30_000)
    assert drawn.count() == len(charts)
    for chart in charts:
        canvas = offline.page.locator(f"#{chart} canvas")
        box = canvas.bounding_box()
        assert box["width"] > 150 and box["height"] > 150, chart
        ink = canvas.evaluate(CANVAS_INK)
        assert ink["share"] > 0.01, f"{chart} is blank: {ink}"
    # The confusion matrix's cells: a colour ramp, not one or two flat colours.
    assert offline.page.locator("#Confusion_matrix__test_ canvas").evaluate(
        CANVAS_INK)["colours"] >= 8
    offline.screenshot(tmp_path / "dvc_plots.png")
    offline.assert_self_contained()


def test_data_docs_draw_their_results_tables_offline(tmp_path, browser):
    frames = make_frames()
    frames["train"].loc[5, "label"] = 10  # one failed check, so a failure row shows too
    docs = tmp_path / "docs"
    summary = run_validation(frames, PARAMS, docs)
    assert summary["failed"] == 1
    pages = sorted(docs.rglob("*.html"))
    for page in pages:  # nothing GX writes still loads from elsewhere
        html = page.read_text()
        remote = re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="(https?://[^"]*)"',
                            html)
        assert remote == [], f"{page.relative_to(docs)} loads {remote}"
        # Vega is dropped from the pages (offline_docs.UNUSED): no page may draw a chart.
        assert "vegaEmbed(" not in html, page.relative_to(docs)
    for name in set(LOCAL_COPIES.values()):
        assert (docs / "static" / "vendor" / name).read_bytes() == (VENDORED / name).read_bytes()

    offline = OfflinePage(browser)
    offline.open(docs / "index.html")
    # The index's runs table is built by bootstrap-table from data in the page: no script,
    # no rows. One row per validation run (7 suites), its status an icon.
    rows = offline.page.locator("table[data-toggle='table'] tbody tr:visible")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() == 7
    assert_status_icons(offline.page, passed=6, failed=1)
    navbar = offline.page.locator("nav.navbar").first
    assert navbar.evaluate("e => getComputedStyle(e).display") == "flex"  # Bootstrap's CSS
    offline.screenshot(tmp_path / "data_docs_index.png")
    offline.assert_self_contained()

    [failed_run] = (docs / "validations" / "train" / "image_stats").rglob("*.html")
    offline = OfflinePage(browser)
    offline.open(failed_run)
    offline.page.get_by_text("values must belong to this set").wait_for(timeout=30_000)
    assert_status_icons(offline.page, passed=4, failed=1)  # the image_stats suite's 5 checks
    offline.screenshot(tmp_path / "data_docs_failed_run.png")
    offline.assert_self_contained()


def assert_status_icons(page, passed: int, failed: int) -> None:
    """The results table's rows, each with its status glyph drawn from Font Awesome's font
    (which loaded from the vendored copy, not the CDN)."""
    for icon, count in (("fa-check-circle", passed), ("fa-times", failed)):
        row_icons = page.locator(f"table tbody tr:visible > td i.{icon}")
        assert row_icons.count() == count, icon
        box = row_icons.first.bounding_box()
        assert box["width"] > 5 and box["height"] > 5, icon
    loaded = page.evaluate("""async () => {
        await document.fonts.ready;
        return [...document.fonts].filter(face => face.family.includes('Font Awesome')
                                                  && face.status === 'loaded').length;
    }""")
    assert loaded >= 1, "Font Awesome's font did not load"
