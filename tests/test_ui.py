"""The MLflow UI as a person sees it: a real headless Chromium (Debian's, driven by Playwright)
against an `mlflow ui` server on a tmp SQLite store holding a just-finished 3-job sweep: the
children under their parent with their names, dataset and source, then the chart view."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator, NamedTuple

import pytest
from mlflow.tracking import MlflowClient

from test_train_script import ROOT, run_script

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Both are slow on a busy 2-core machine: the server start, and the UI's first render.
SERVER_TIMEOUT_S = 180
PAGE_TIMEOUT_MS = 180_000
# Screenshots kept as test artifacts (CI keeps outputs/): MGELAB_TEST_ARTIFACTS, else outputs/test-artifacts/ui.
ARTIFACTS = Path(os.environ.get("MGELAB_TEST_ARTIFACTS", ROOT / "outputs" / "test-artifacts")) / "ui"


class ChildRun(NamedTuple):
    name: str
    dataset: str
    value: float

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mlflow_ui(tracking_uri: str, log_file: Path) -> Iterator[str]:
    """``mlflow ui`` on a free loopback port; yields its base URL, stops it (its process group) after."""
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin), "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1"]
    with log_file.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, log_file)
            yield f"http://127.0.0.1:{port}"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_healthy(base: str, proc: subprocess.Popen, log_file: Path) -> None:
    deadline = time.time() + SERVER_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow ui exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow ui did not answer within {SERVER_TIMEOUT_S} s:\n{log_file.read_text()[-3000:]}")


def open_browser(pw, profile: str):
    context = pw.chromium.launch_persistent_context(
        profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1600, "height": 900},
    )
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    return context, page


def unfold_sweep(page, parent_id: str, child_ids: Iterable[str]) -> None:
    """Child runs are folded under their parent: unfold them with the button in the parent's name
    cell. Runs are found by their links (names can repeat across sweeps)."""
    parent_row = page.locator("[role=row]", has=page.locator(f'a[href$="/runs/{parent_id}"]'))
    parent_row.locator('[col-id="attributes.`Run Name`"] button').first.click()
    for run_id in child_ids:
        page.locator(f'a[href$="/runs/{run_id}"]').wait_for()
    close = page.get_by_role("button", name="Close")
    if close.count():  # the assistant panel takes a third of the page
        close.first.click()


def cell(page, run_id: str, col_id: str):
    # ag-grid draws a row twice (pinned name column, scrolling columns), joined by row-id.
    return page.locator(f'[role=row][row-id="{run_id}"] [col-id="{col_id}"]').first


def check_table(page, children: Dict[str, ChildRun], metric: str) -> None:
    """Every child listed by its name, with its dataset (and context), its source script and ``metric``."""
    show_metric_column(page, metric)
    for run_id, child in children.items():
        # The name cell also holds the run's colour swatch: read its link.
        assert cell(page, run_id, "attributes.`Run Name`").locator("a").first.inner_text().strip() == child.name
        dataset = cell(page, run_id, "attributes.`Dataset`").inner_text()
        assert child.dataset in dataset and "Train" in dataset, (child.name, dataset)
        assert cell(page, run_id, "attributes.`Source`").inner_text().strip() == "train.py", child.name
        assert float(cell(page, run_id, f"metrics.`{metric}`").inner_text()) == pytest.approx(child.value, abs=5e-3)


def show_metric_column(page, metric: str) -> None:
    """Columns -> search -> tick the metric (the table shows no metric until asked)."""
    page.get_by_test_id("column-selection-dropdown").first.click()
    page.get_by_placeholder("Search columns").fill(metric)
    node = page.locator("[data-testid=column-selector-tree] .du-bois-light-tree-treenode").filter(
        has_text=re.compile(f"^{re.escape(metric)}$")
    )
    node.locator(".du-bois-light-tree-checkbox").click()
    page.keyboard.press("Escape")
    page.locator(f'[col-id="metrics.`{metric}`"]').first.wait_for()


def check_chart(page, children: Dict[str, ChildRun], metric: str) -> None:
    """The chart view has a card for ``metric`` whose legend names every child."""
    page.locator("label", has=page.locator("input[name=runs-view-mode][value=CHART]")).click()
    # Cards below the fold are drawn only when scrolled to: the search keeps just this one.
    page.get_by_placeholder("Search metric charts").fill(metric)
    area = page.get_by_test_id("experiment-view-compare-runs-chart-area")
    area.get_by_text(metric, exact=True).first.wait_for()
    for child in children.values():
        area.get_by_text(f"{child.name} ({metric})", exact=True).first.wait_for()
    area.get_by_text(metric, exact=True).first.scroll_into_view_if_needed()


def save_screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / name
    page.screenshot(path=str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    return png


def test_ui_compares_the_three_runs_of_a_sweep(tmp_path):
    pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) is not installed")
    from playwright.sync_api import sync_playwright

    run_script(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data=synthetic", "epochs=2",
               "trainer.progress_bar=false", "model=linear,mlp,cnn")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweep/role") == "parent")
    children = {r.info.run_id: ChildRun(r.info.run_name, "synthetic", r.data.metrics["val/acc"])
                for r in runs if r is not parent}
    assert sorted(c.name for c in children.values()) == ["cnn", "linear", "mlp"]

    with mlflow_ui(uri, tmp_path / "mlflow_ui.log") as base, sync_playwright() as pw, \
            tempfile.TemporaryDirectory() as profile:
        context, page = open_browser(pw, profile)
        # This address opens the training-runs table (MLflow 3 otherwise starts in its GenAI view).
        page.goto(f"{base}/#/experiments/{experiment.experiment_id}/runs")
        unfold_sweep(page, parent.info.run_id, children)
        check_table(page, children, "val/acc")
        save_screenshot(page, "sweep_table.png")
        check_chart(page, children, "val/acc")
        save_screenshot(page, "sweep_charts.png")
        context.close()
