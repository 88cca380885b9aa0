"""The explorer in a real browser: start ``sim.explorer.app.serve`` on a free localhost port, drive the
page with Playwright in headless Chromium (Debian's package, no downloaded browser), and stop
the server cleanly.

Checks: the page loads with a map and charts; Step advances the day counter and redraws a
chart; switching the phone channel off rebuilds the model (back to day 0, the lever shown as
changed); hovering the map shows a grid's figures and clicking it opens the details panel;
compare mode shows two maps. It also times 20 single-day updates in the page (click Step until
the day counter, the map and a chart have been redrawn) and saves screenshots in pytest's tmp
dir (with ``GOVSIM_SAVE_SCREENSHOTS=1`` also to ``docs/img/`` for the documentation).

Skipped, with the reason, only where the browser cannot run: Playwright or Chromium missing,
or the page's browser files neither installed nor installable (``python -m sim.explorer.assets``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from statistics import median

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("GOVSIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEP_TIMINGS = 20

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed (pip install playwright; it drives the system Chromium, "
           "no browser download)",
)

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    import sim.explorer.assets as app_assets

    if app_assets.missing():
        problems = app_assets.ensure(log=lambda msg: None)
        if problems:
            pytest.skip("the page's browser files are missing and could not be fetched with npm: "
                        + "; ".join(problems))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) in a process group, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            out.append(int(entry.name))
    return out


@pytest.fixture
def server(tmp_path):
    """The explorer's server in its own process group; stopped (SIGTERM) and checked after."""
    yield from _serve(tmp_path, "default")


@pytest.fixture
def pre_reform_server(tmp_path):
    """The explorer started on another scenario (``govsim explore district_pre_reform``)."""
    yield from _serve(tmp_path, "district_pre_reform")


def _serve(tmp_path, scenario: str):
    from sim.explorer.app import check_environment

    problems = check_environment()
    assert not problems, "; ".join(problems)
    _require_browser()
    port = _free_port()
    log_path = tmp_path / "server.log"
    code = f"import sys; from sim.explorer.app import serve; sys.exit(serve({scenario!r}, port={port}))"
    env = {**os.environ, "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer in 120 s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url, proc, log_path
    finally:
        pgid = proc.pid
        if proc.poll() is None:
            os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=10)
                pytest.fail("the server did not stop within 30 s of SIGTERM")
        deadline = time.monotonic() + 10
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _group_members(pgid)
        if left:
            os.killpg(pgid, signal.SIGKILL)
        assert not left, f"processes left behind by the server: {left}"


# JavaScript run in the page: press Step, then wait until the day counter shows the expected
# day and the map and the backlog chart have been redrawn; returns the milliseconds taken.
_STEP_AND_WAIT = """
async (expected) => {
  // the map is drawn on a canvas (a new one each redraw), the charts as SVG
  document.querySelectorAll('.govsim-map canvas').forEach(c => { c.dataset.govsimOld = '1'; });
  const mapRedrawn = () => { const c = document.querySelector('.govsim-map canvas'); return c && !c.dataset.govsimOld; };
  const chart = () => { const e = document.querySelector('.govsim-chart-backlog svg.marks'); return e ? e.innerHTML : ''; };
  const chartBefore = chart();
  const btn = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Step');
  const t0 = performance.now();
  const seen = {};
  btn.click();
  return await new Promise((resolve, reject) => {
    const check = () => {
      const now = performance.now() - t0;
      const day = (document.querySelector('.govsim-day') || {}).textContent;
      if (seen.day === undefined && day === expected) seen.day = now;
      if (seen.map === undefined && seen.day !== undefined && mapRedrawn()) seen.map = now;
      if (seen.chart === undefined && seen.day !== undefined && chart() !== chartBefore) seen.chart = now;
      if (seen.day !== undefined && seen.map !== undefined && seen.chart !== undefined) {
        seen.page = Math.max(seen.day, seen.map, seen.chart);
        resolve(seen);
      } else if (now > 30000) {
        reject(new Error('no update within 30 s; day counter: ' + day));
      } else {
        requestAnimationFrame(check);
      }
    };
    check();
  });
}
"""


def _day(page) -> str:
    return page.locator(".govsim-day").inner_text().strip()


def test_explorer_in_headless_chromium(server, tmp_path):
    url, _proc, log_path = server
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1600, "height": 2300},
        )
        try:
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)

            # the page: day counter, a map and the charts
            page.wait_for_selector(".govsim-day", timeout=90_000)
            assert _day(page) == "Day 0"
            page.wait_for_selector(".govsim-map .vega-embed canvas", timeout=60_000)
            for chart in ("rates", "backlog", "ttr", "channels", "survey"):
                page.wait_for_selector(f".govsim-chart-{chart} svg.marks", timeout=30_000)
            assert "Closure and true resolution of the last 30 days' reports" in page.locator(".govsim-chart-rates svg.marks").text_content()
            canvas = page.locator(".govsim-map canvas").first.bounding_box()
            assert canvas["width"] > 400 and canvas["height"] > 400, canvas

            # Step: the day counter and a chart change
            backlog_before = page.locator(".govsim-chart-backlog svg.marks").inner_html()
            page.get_by_role("button", name="Step", exact=True).click()
            page.wait_for_function("() => document.querySelector('.govsim-day').textContent === 'Day 1'")
            page.wait_for_function(
                "(before) => { const e = document.querySelector('.govsim-chart-backlog svg.marks');"
                " return e && e.innerHTML !== before; }", arg=backlog_before)

            # the page-side cost of one simulated day, 20 times
            runs = [page.evaluate(_STEP_AND_WAIT, f"Day {d}") for d in range(2, 2 + STEP_TIMINGS)]
            (tmp_path / "step_timings_ms.json").write_text(json.dumps(runs, indent=1))
            timings = [r["page"] for r in runs]
            print(f"\nexplorer: one day of default.yaml updates the page in {median(timings):.0f} ms "
                  f"(median of {len(timings)}; min {min(timings):.0f}, max {max(timings):.0f}; "
                  f"day counter {median(r['day'] for r in runs):.0f} ms, map redrawn "
                  f"{median(r['map'] for r in runs):.0f} ms, chart redrawn {median(r['chart'] for r in runs):.0f} ms)")
            assert median(timings) < 1000, timings

            # hover a grid: the tooltip shows its figures; click: the details panel
            box = page.locator(".govsim-map canvas").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.45)
            tooltip = page.locator("#vg-tooltip-element")
            tooltip.wait_for(state="visible", timeout=10_000)
            tip = tooltip.inner_text()
            assert "Population" in tip or "Incident" in tip or "Staff" in tip, tip
            page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.45)
            page.wait_for_function(
                "() => /Grid \\d+/.test(document.querySelector('.govsim-grid-details').textContent)")
            details = page.locator(".govsim-grid-details").inner_text()
            assert "population" in details and "perceived safety" in details
            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)

            # switch the phone channel off: the model is rebuilt (same seed, day 0)
            phone = page.get_by_role("checkbox", name="Phone channel (snap & report)")
            assert phone.is_checked()
            page.wait_for_timeout(1000)  # let the server finish the click's render first
            page.locator(".govsim-lever-channels-snap_report-enabled label").click()
            page.wait_for_function(
                "() => document.querySelector('.govsim-levers').textContent.includes('snap_report.enabled = off')")
            assert _day(page) == "Day 0"
            assert not phone.is_checked()
            assert "seed 20240101" in page.locator(".govsim-runs").inner_text()
            for d in (1, 2, 3):
                page.evaluate(_STEP_AND_WAIT, f"Day {d}")
            assert "Phone channel" in page.locator(".govsim-chart-channels svg.marks").text_content()

            # compare mode: a second scenario in lockstep, two maps side by side
            page.get_by_role("button", name="Compare with (same seed, in lockstep)").click()
            page.locator(".v-menu__content .v-list-item", has_text="district_pre_reform").first.click()
            page.wait_for_function("() => document.querySelector('.govsim-day').textContent === 'Day 0'")
            page.wait_for_function("() => document.querySelector('.govsim-runs').textContent.includes(' vs ')")
            for d in range(1, 6):
                page.evaluate(_STEP_AND_WAIT, f"Day {d}")
            page.wait_for_selector(".govsim-chart-compare svg.marks", timeout=30_000)
            assert "B − A" in page.locator(".govsim-headlines").inner_text()
            page.screenshot(path=str(tmp_path / "explorer-compare.png"), full_page=True)
        finally:
            context.close()
    assert not errors, errors
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    if os.environ.get("GOVSIM_SAVE_SCREENSHOTS"):
        img = ROOT / "docs" / "img"
        img.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "explorer.png", img / "explorer.png")
        shutil.copy(tmp_path / "explorer-compare.png", img / "explorer-compare.png")
        shutil.copy(tmp_path / "step_timings_ms.json", img / "explorer-step-timings-ms.json")


def test_explorer_opens_the_scenario_it_was_started_with(pre_reform_server):
    """``govsim explore district_pre_reform`` opens that scenario, not the default (the
    session's settings are made at import, before the server knew the scenario)."""
    url, _proc, _log = pre_reform_server
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".govsim-day", timeout=120_000)
            page.wait_for_function(
                "() => document.body.innerText.includes('district_pre_reform')", timeout=60_000)
            assert "district_pre_reform" in page.inner_text("body")
        finally:
            browser.close()
