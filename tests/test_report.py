"""``govsim report``: a self-contained HTML page with the headline table, figures and caveats,
valid HTML that opens in headless Chromium without console errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from analysis_data import make_compare, make_levers, make_run

from sim.analysis.report import scenario_differences, write_report

CHROMIUM = Path("/usr/bin/chromium")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictParser(HTMLParser):
    """Fails on unbalanced or misnested tags (html.parser itself never raises)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
        else:
            self.stack.pop()


def _check_html(text: str) -> StrictParser:
    p = StrictParser()
    p.feed(text)
    p.close()
    assert p.doctype, "no <!DOCTYPE html>"
    assert not p.errors, p.errors[:5]
    assert not p.stack, f"unclosed tags: {p.stack}"
    # self-contained: no scripts, no external style sheets or images
    assert "script" not in p.tags and "link" not in p.tags
    assert not re.search(r'(src|href)="(https?:)?//', text)
    return p


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    # a scenario whose description needs escaping
    sc = base / "tricky.yaml"
    sc.write_text("extends: default.yaml\nname: tricky\ndescription: 'A <script>alert(1)</script> & \"quoted\" test'\n")
    run = make_run(base / "run", scenario=str(sc))
    cmp = make_compare(base / "cmp")
    lev = make_levers(base / "lev", reps=2)
    return {"run": write_report(run), "cmp": write_report(cmp), "lev": write_report(lev, out=base / "lev.html"),
            "run_dir": run, "cmp_dir": cmp}


CI = r"\[-?[\d.,]+%?, -?[\d.,]+%?\]"


def test_run_report(reports):
    path = reports["run"]
    assert path == reports["run_dir"] / "report.html"
    text = path.read_text(encoding="utf-8")
    _check_html(text)
    for label in ("Official closure rate", "True resolution rate", "Time to resolution, median",
                  "Surveyed share feeling safe", "Perceived safety, mean"):
        assert label in text
    # the survey's Wilson interval and sample size
    assert re.search(r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", text)
    assert re.search(r"95% Wilson CI; n = [\d,]+ residents in \d+ wave\(s\)", text)
    assert text.count("data:image/png;base64,") >= 5
    # what was run: seed, days, commit, and the settings changed from the defaults with descriptions
    assert "Seed" in text and "re-run with" in text and "Commit" in text
    assert "city.population" in text and "100000" in text and "8000" in text and "Resident population" in text
    # escaped description
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    # caveats
    for words in ("assumed", "Wilson", "synthetic", "not from the real boundaries"):
        assert words in text


def test_compare_report(reports):
    text = reports["cmp"].read_text(encoding="utf-8")
    _check_html(text)
    assert "Comparison: district_pre_reform vs default" in text
    assert "Difference to baseline [95% CI]" in text and "(baseline)" in text
    assert len(re.findall(CI, text)) >= 20
    assert 'class="star"' in text  # at least one distinguishable difference (grid workload)
    assert "Grid worker workload" in text and "common random numbers" in text
    # how the reform differs from the baseline, in plain words with descriptions
    assert "fusion.enabled false → true" in text and "Police-grid fusion" in text
    assert "paperwork.forms 118 → 49" in text
    assert text.count("data:image/png;base64,") >= 4
    assert "not adjusted" in text


def test_lever_experiment_report(reports):
    text = reports["lev"].read_text(encoding="utf-8")
    _check_html(text)
    assert "Shapley" in text and "all levers off" in text and "fusion on" in text and "all levers on" in text
    assert text.count("data:image/png;base64,") >= 3


def test_scenario_differences():
    from sim.scenario import load_scenario

    a = load_scenario("district_pre_reform").to_dict()
    b = load_scenario("default").to_dict()
    rows = {r["key"]: r for r in scenario_differences(a, b)}
    assert rows["grids.count"]["baseline"] == "220" and rows["grids.count"]["value"] == "176"
    assert rows["tiers.enabled"]["value"] == "true"
    assert "name" not in rows and "description" not in rows
    assert rows["grids.count"]["description"].startswith("Number of grids")


def test_not_a_results_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path)


# --------------------------------------------------------------------------- in a browser
def _browser_check(path: Path, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is not None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page()
                problems: list[str] = []
                page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                        else None)
                page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
                page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
                page.goto(path.resolve().as_uri())
                page.wait_for_load_state("load")
                images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
                title = page.title()
                page.screenshot(path=str(tmp_path / f"{path.stem}.png"), full_page=False)
            finally:
                browser.close()
        assert not problems, problems
        assert images and all(images), "an embedded figure did not load"
        assert "govsim report" in title
        return
    proc = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                           "--enable-logging=stderr", "--v=0", "--dump-dom", path.resolve().as_uri()],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "</html>" in proc.stdout and "data:image/png;base64," in proc.stdout
    console = [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]
    assert not console, console


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: cannot open the report in a browser "
                                                  "(apt-get install chromium to run this check)")
@pytest.mark.parametrize("which", ["run", "cmp"])
def test_report_opens_in_headless_chromium_without_console_errors(reports, which, tmp_path):
    _browser_check(reports[which], tmp_path)


def test_report_is_one_file(reports, tmp_path):
    # copied alone elsewhere it is still complete: no files beside it are referenced
    dest = tmp_path / "alone.html"
    shutil.copy(reports["cmp"], dest)
    text = dest.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:|#)', text)


def test_govsim_report_command_line(reports, tmp_path, capsys):
    import argparse

    from sim.cli import build_parser, main

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in sub.choices:
        pytest.skip("`govsim report` is not wired into sim/cli.py yet")
    out = tmp_path / "r.html"
    assert main(["report", str(reports["cmp_dir"]), "--out", str(out)]) == 0
    _check_html(out.read_text(encoding="utf-8"))
    assert main(["report", str(tmp_path / "missing")]) == 2
