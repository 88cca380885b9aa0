"""A self-contained HTML report of a results directory (``govsim report DIR``).

:func:`write_report` reads a directory written by ``govsim run``, ``govsim compare`` or
``govsim experiment run`` and writes one HTML file (default ``DIR/report.html``) that needs
nothing else: the figures are embedded as base64 PNG, the style sheet is inline, there is no
JavaScript. It says:

* **what was run**: scenarios and, in plain words, how each differs from the baseline (every
  changed setting with old → new value and the field's description from
  :mod:`sim.scenario`), the factors of an experiment, seeds, replications, days, warm-up,
  commit and package versions;
* **the headline table** with 95% intervals: a single run's summary (with the survey's Wilson
  interval), the paired comparison of :func:`sim.analysis.compare`, or for experiments the
  means by scenario and factor levels (:func:`sim.analysis.compare.summarise_runs`), the Shapley
  attribution of lever experiments and the sensitivity tables of ``analysis/``
  (:mod:`sim.analysis.report_tables`);
* **the key figures** of :mod:`sim.analysis.plots`;
* **caveats**: which numbers are assumed (the scenario descriptions say so), how perceived
  safety is surveyed (sample size per wave, Wilson interval), that the city is synthetic, and
  what the intervals do and do not cover.

A calibration directory (``govsim calibrate``) gets its own page (``calibration.html.j2``):
what was calibrated, the fit of every target with the ensemble's 90% interval, each parameter's
prior and posterior, history matching wave by wave with the emulators' diagnostics, the ABC
generations and the screening, with the figures of :mod:`sim.analysis.calibration_plots`.

This module gathers the content; the Jinja2 templates in ``sim/analysis/templates/`` lay it
out (``report.html.j2``, ``caveats.html.j2``, ``macros.html.j2``, ``report.css.j2``). Every
value is escaped when rendered (autoescape), so a scenario description can hold any text.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from sim import outcomes as registry
from sim.analysis import calibration_plots, plots
from sim.analysis.compare import comparison_of, done_runs
from sim.analysis.report_tables import (
    HEADLINE,
    Table,
    attribution_blocks,
    calibration_facts,
    calibration_sections,
    compare_table,
    h3,
    para,
    run_table,
    sensitivity_blocks,
    show,
    summary_table,
    table,
    table_block,
)
from sim.analysis.sensitivity import read_frames
from sim.files import atomic_write_text, results_kind

__all__ = ["HEADLINE", "calibration_html", "report_html", "scenario_differences", "write_report"]


# --------------------------------------------------------------------------- templates
def _escape(value: Any) -> Any:
    """Escape a value as :func:`html.escape` does (``&quot;`` for a double quote, where
    markupsafe would write ``&#34;``), so the page reads the same to people and to searches.
    Values already marked safe (the macros' output) pass through."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (package data of :mod:`sim.analysis`)."""
    return jinja2.Environment(loader=jinja2.PackageLoader("sim.analysis", "templates"),
                              autoescape=True, finalize=_escape, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)


# --------------------------------------------------------------------------- figures
def _figure(make: Callable[[], Any], caption: str) -> dict[str, Any]:
    """Draw one figure as an embedded PNG block; a figure that cannot be drawn becomes a note,
    not a failed report."""
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make().savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    except (ValueError, KeyError) as exc:
        return para(f"(Figure not drawn: {caption} — {exc})", "note")
    return {"kind": "figure", "png": base64.b64encode(buf.getvalue()).decode("ascii"),
            "caption": caption}


def _axes(figsize: tuple[float, float] = (9.0, 4.6)) -> Any:
    return plots.new_axes(figsize, pyplot=False)


# --------------------------------------------------------------------------- scenario differences
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(_flatten(v, key))
            else:
                out[key] = v
    return out


def _field_description(dotted: str) -> str:
    from sim.scenario import Scenario

    model: Any = Scenario
    info = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return ""
        info = fields[part]
        model = info.annotation
    return (info.description or "") if info is not None else ""


def scenario_differences(base: dict, other: dict, ignore: Sequence[str] = ("name", "description")
                         ) -> list[dict[str, str]]:
    """Settings that differ between two resolved scenario dicts (``Scenario.to_dict()``), as
    ``{"key", "baseline", "value", "description"}`` rows in schema order."""
    a, b = _flatten(base), _flatten(other)
    rows = []
    for key in list(dict.fromkeys([*a, *b])):
        if key in ignore or a.get(key) == b.get(key):
            continue
        rows.append({"key": key, "baseline": show(a.get(key, "(not set)")),
                     "value": show(b.get(key, "(not set)")),
                     "description": _field_description(key)})
    return rows


def _diff_blocks(rows: list[dict[str, str]], base_name: str, name: str) -> list[dict]:
    if not rows:
        return [para(f"'{name}' has the same settings as '{base_name}'.")]
    body = [(r["key"], r["baseline"], r["value"], r["description"]) for r in rows]
    return [table_block(table(["Setting", base_name, name, "What it is (sim/scenario.py)"], body))]


def _plain_words(rows: list[dict[str, str]]) -> str:
    parts = [f"{r['key']} {r['baseline']} → {r['value']}" for r in rows[:12]]
    more = f" and {len(rows) - 12} more" if len(rows) > 12 else ""
    return "; ".join(parts) + more


# --------------------------------------------------------------------------- what was run
def _git_text(meta: dict) -> str:
    git = meta.get("git") or {}
    commit = git.get("commit") or "unknown (not a git checkout)"
    return commit + (" — with uncommitted changes" if git.get("dirty") else "")


def _versions_text(meta: dict) -> str:
    v = meta.get("versions") or {}
    keys = [k for k in ("govsim", "python", "mesa", "numpy", "pandas", "scipy") if k in v]
    return ", ".join(f"{k} {v[k]}" for k in keys)


def _scenarios_of(res: Any, kind: str) -> dict[str, dict]:
    meta = res.metadata or {}
    if kind == "run":
        sc = meta.get("scenario") or {}
        return {str(meta.get("scenario_name") or sc.get("name", "scenario")): sc}
    return dict(meta.get("scenarios") or {})


def _baseline_label(res: Any, scen: dict[str, dict]) -> str:
    f = Path(res.path) / "comparison.parquet"
    if f.is_file():
        b = pd.read_parquet(f, columns=["baseline"])["baseline"]
        if len(b):
            return str(b.iloc[0])
    return next(iter(scen))


def _design_text(design: dict, meta: dict) -> str:
    kind = design.get("kind", "none")
    if kind == "sobol":
        return (f"Sobol' (Saltelli) sample, N = {design.get('base_samples')} base samples"
                f"{', with second order' if design.get('second_order') else ''}")
    if kind == "morris":
        return f"Morris, {design.get('trajectories')} trajectories on {design.get('levels')} levels"
    if kind == "latin_hypercube":
        return f"Latin hypercube, {design.get('samples')} samples"
    if meta.get("factors"):
        return "full factorial over the factors below"
    return "the scenarios as they are (no factors)"


def _city_text(sc: dict) -> str:
    c = sc.get("city") or {}
    g = (sc.get("grids") or {}).get("count")
    if not c:
        return "?"
    return (f"synthetic lattice of {c.get('width')} × {c.get('height')} cells of "
            f"{c.get('cell_km')} km, {int(c.get('population', 0)):,} people, {g} grids")


def _what_was_run(res: Any, kind: str) -> dict[str, Any]:
    """Facts about the run or batch, and how its scenarios differ (the first section)."""
    meta = res.metadata or {}
    runs = res.runs
    scen = _scenarios_of(res, kind)
    if kind == "run":
        from sim.scenario import Scenario

        sc = next(iter(scen.values()), {})
        seed = (meta.get("seed") or {}).get("entropy")
        description = " ".join(str(sc.get("description", "")).split())
        facts = [
            ("Scenario", f"{next(iter(scen), '?')} — {description}"),
            ("City", _city_text(sc)),
            ("Days", (f"{meta.get('days')} (the first {meta.get('warmup_days')} are a "
                      "warm-up, left out of the summary)")),
            ("Seed", f"{seed} (re-run with: govsim run … --seed {seed})"),
            ("Replications", "1 (a single run: the table shows no run-to-run interval)"),
            ("Commit", _git_text(meta)),
            ("Versions", _versions_text(meta)),
            ("Command", meta.get("command", "")),
            ("Started / finished", f"{meta.get('started', '?')} / {meta.get('finished', '?')}"),
        ]
        changed = scenario_differences(Scenario().to_dict(), sc)
        return {"facts": facts, "changed": _diff_blocks(changed, "default value", "this run")}

    seed = meta.get("seed") or {}
    done = len(done_runs(runs))
    failed = int((runs["status"] == "failed").sum()) if "status" in runs else 0
    design = meta.get("design") or {}
    spec_text = (meta.get("spec") or {}).get("description")
    facts = [
        ("Experiment", f"{meta.get('name', '?')}" + (f" — {spec_text}" if spec_text else "")),
        ("Scenarios", ", ".join(scen) or "?"),
        ("Design", _design_text(design, meta)),
        ("Replications", (f"{meta.get('replications')} per scenario and design point; "
                          "replication r uses the same seed in every scenario (common random "
                          "numbers), so differences are paired")),
        ("Days", (f"{meta.get('days')} per run (the first {meta.get('warmup_days')} are a "
                  "warm-up, left out of the outcomes)")),
        ("Root seed", str(seed.get("root", seed)) if isinstance(seed, dict) else str(seed)),
        ("Runs", f"{done} done" + (f", {failed} FAILED (left out; see the error column of "
                                   "runs.parquet)" if failed else "")
                 + f" of {meta.get('runs_planned', len(runs))} planned"),
        ("Commit", _git_text(meta)),
        ("Versions", _versions_text(meta)),
        ("Started / finished", f"{meta.get('started', '?')} / {meta.get('finished', '?')}"),
    ]
    first = next(iter(scen.values()), {})
    out: dict[str, Any] = {"facts": facts, "city": _city_text(first) if first else "",
                           "baseline": None, "differences": [], "factors": None}
    if len(scen) > 1:
        base = _baseline_label(res, scen)
        out["baseline"] = base
        for name, sc in scen.items():
            if name == base:
                continue
            rows = scenario_differences(scen[base], sc)
            if rows:
                out["differences"].append(para(f"{name}: " + _plain_words(rows) + "."))
            out["differences"] += _diff_blocks(rows, base, name)
    if meta.get("factors"):
        out["factors"] = _factor_table(meta, design)
    return out


def _factor_table(meta: dict, design: dict) -> Table:
    levers = meta.get("levers") or {}
    levels = design.get("factors") or {}
    problem = design.get("problem") or {}
    bounds = dict(zip(problem.get("names", []), problem.get("bounds", []), strict=False))
    rows = []
    for f in meta["factors"]:
        if f in levers:
            lv = "; ".join(f"{i}: " + ", ".join(f"{k} = {show(v)}" for k, v in d.items())
                           for i, d in enumerate(levers[f]))
            rows.append((f, "lever (recorded as its level index)", lv, ""))
        elif f in levels:
            rows.append((f, "levels", ", ".join(map(show, levels[f])), _field_description(f)))
        elif f in bounds:
            lo, hi = bounds[f]
            rows.append((f, "range", f"{lo:g} – {hi:g}", _field_description(f)))
        else:
            rows.append((f, "", "", _field_description(f)))
    return table(["Factor", "Kind", "Values", "What it is"], rows)


# --------------------------------------------------------------------------- headline results
def _headline(res: Any, kind: str, extra: dict[str, Any]) -> list[dict]:
    """The headline tables; fills ``extra`` with the frames the figures reuse."""
    if kind == "run":
        return [table_block(run_table(res))]
    meta = res.metadata or {}
    done = done_runs(res.runs)
    if done.empty:
        return [para("No run finished: there is nothing to summarise.", "warn")]
    out: list[dict] = []
    if done["scenario"].nunique() > 1 and "replication" in done:
        try:
            comp = comparison_of(res)
            extra["comparison"] = comp
            out += [h3(f"Each scenario against '{comp['baseline'].iloc[0]}'"),
                    table_block(compare_table(comp))]
        except ValueError as exc:
            out.append(para(f"No paired comparison: {exc}", "note"))
    if kind in ("experiment", "sensitivity"):
        outcomes = [o for o in HEADLINE if o in done]
        by = "scenario and factor levels" if meta.get("factors") else "scenario"
        out += [h3(f"Outcomes by {by}"), table_block(summary_table(res, outcomes))]
        blocks, att = attribution_blocks(res, outcomes)
        out += blocks
        if att is not None:
            extra["attribution"] = att
        frames = read_frames(res.path)  # what `govsim experiment analyze` wrote, if anything
        blocks = sensitivity_blocks(frames)
        if blocks:
            out += blocks
            extra["sensitivity"] = frames
        elif (meta.get("design") or {}).get("kind") in ("sobol", "morris", "latin_hypercube"):
            out.append(para("Sensitivity indices are not computed yet: run govsim experiment "
                            f"analyze {res.path}, then make the report again.", "note"))
    return out


# --------------------------------------------------------------------------- figures
#: Figures of a single run: (daily outcome, caption), (cell column, caption), (grouping, caption).
_RUN_SERIES = {
    "closure_rate": "Official closure rate by day: cases reported in the last 30 days and "
                    "closed (including on paper) by the end of the day, over all reported in "
                    "them.",
    "backlog": "Known cases not yet closed at the end of each day.",
    "perceived_safety": "Residents' mean perceived safety (the model's own mean, no sampling).",
    "survey_share_safe": "Survey waves: share answering 'safe', with each wave's 95% Wilson "
                         "interval.",
}
_RUN_MAPS = {
    "perceived_safety": "Mean perceived safety of each cell's residents at the end; thin lines "
                        "are grid boundaries, thick ones townships (synthetic city).",
    "incidents": "Incidents per cell over the run.",
}
_RUN_ECDFS = {
    "first_channel": "Time from report to true resolution by the channel that found the "
                     "incident (ECDF, log scale).",
    "route": "Time from report to true resolution by handling route (tier).",
}


def _run_figures(res: Any) -> list[dict]:
    out = []
    ts = res.timeseries
    for o, cap in _RUN_SERIES.items():
        if ts is not None and o in ts:
            out.append(_figure(lambda o=o: plots.figure_of(plots.timeseries(res, o, ax=_axes())),
                               cap))
    if res.cells is not None:
        for v, cap in _RUN_MAPS.items():
            out.append(_figure(lambda v=v: plots.figure_of(plots.city_map(
                res, v, ax=_axes((7.2, 6.4)), boundaries=("grid", "township", "county"))), cap))
    if res.incidents is not None:
        for by, cap in _RUN_ECDFS.items():
            out.append(_figure(lambda by=by: plots.figure_of(
                plots.resolution_ecdf(res, by=by, ax=_axes())), cap))
    return out


def _figures(res: Any, kind: str, extra: dict[str, Any]) -> list[dict]:
    if kind == "run":
        return _run_figures(res)
    out = []
    if "comparison" in extra:
        comp = extra["comparison"]
        nrows = int((comp["scenario"] != comp["baseline"]).sum())
        out.append(_figure(lambda: plots.figure_of(plots.forest(
            comp, ax=_axes((9.5, 0.42 * nrows + 2.4)))),
            "Paired differences to the baseline, as % of the baseline mean of each outcome, "
            "with 95% paired intervals (filled: the interval excludes 0)."))
        for o in ("closure_rate", "true_resolution_rate", "time_to_resolution_median_h"):
            if o in set(comp["outcome"]):
                out.append(_figure(lambda o=o: plots.figure_of(plots.forest(
                    comp, ax=_axes((9, 2.8)), outcome=o)),
                    f"{registry.label(o)}: paired difference in its own unit."))
    ts = res.timeseries
    if ts is not None:
        for o in ("closure_rate", "backlog", "perceived_safety"):
            if o in ts:
                out.append(_figure(lambda o=o: plots.figure_of(plots.timeseries(
                    res, o, ax=_axes())),
                    f"{registry.label(o)} by day and scenario, 95% t-interval over runs."))
    att = extra.get("attribution")
    if att is not None:
        for o in dict.fromkeys(att["outcome"]):
            if o in HEADLINE[:4] or o == "survey_share_safe":
                out.append(_figure(lambda o=o: plots.figure_of(plots.attribution_waterfall(
                    att, o, ax=_axes((8.5, 4.8)))),
                    f"{registry.label(o)}: the reform's effect split into the levers' Shapley "
                    "values."))
    meta = res.metadata or {}
    factors = [f for f in (meta.get("factors") or []) if f in res.runs]
    if (factors and not meta.get("levers")
            and (meta.get("design") or {}).get("kind") in ("full_factorial", "latin_hypercube",
                                                           None)):
        for o in ("closure_rate", "true_resolution_rate"):
            if o in res.runs:
                out.append(_figure(lambda o=o: plots.draw(res, "factor", o)[0],
                                   f"{registry.label(o)} against each factor: mean and 95% "
                                   "t-interval over runs at each level (dots: runs)."))
    frames = extra.get("sensitivity") or {}
    for name in ("sobol", "morris", "src"):
        if name in frames:
            df = frames[name]
            key = [o for o in HEADLINE if o in set(df["outcome"])]
            df = df[df["outcome"].isin(key)] if key else df
            n = len(df) + df["outcome"].nunique()
            out.append(_figure(lambda df=df, n=n: plots.figure_of(plots.sensitivity_bars(
                df, ax=_axes((9.5, max(3.0, 0.34 * n + 1.6))))),
                f"{name} sensitivity indices of the headline outcomes with 95% intervals (all "
                "outcomes are in the table above)."))
    if not out:
        out.append(para("No figures: this directory has no time series, comparison, levers or "
                        "analysis.", "note"))
    return out


# --------------------------------------------------------------------------- caveats
def _caveats(res: Any, kind: str) -> dict[str, Any]:
    """The numbers the caveats section quotes (its words are in ``caveats.html.j2``)."""
    from sim.analysis.docgen import iter_parameters

    meta = res.metadata or {}
    runs = res.runs
    scen = _scenarios_of(res, kind)
    first = next(iter(scen.values()), {})
    flat = {k: _flatten(v) for k, v in scen.items()}
    params = [p for p in iter_parameters()
              if "ssumed" in (p.field.description or "") and "[]" not in p.key]
    differing = [p.key for p in params if len({show(f.get(p.key)) for f in flat.values()}) > 1]
    safety = first.get("safety") or {}
    waves = runs["survey_waves"].iloc[0] if "survey_waves" in runs and len(runs) else None
    n = runs["survey_n"].iloc[0] if "survey_n" in runs and len(runs) else None
    pooled = (f"{int(waves)} wave(s), n = {int(n):,}"
              if waves is not None and pd.notna(waves) and n is not None and pd.notna(n) else "")
    city = first.get("city") or {}
    rows = [(p.key, " / ".join(dict.fromkeys(show(f.get(p.key)) for f in flat.values())),
             p.field.description or "") for p in params]
    heads = ["Parameter", "Value used" + (" (by scenario)" if len(scen) > 1 else ""),
             "Description"]
    return {
        "n_assumed": len(params), "several": len(scen) > 1, "n_differing": len(differing),
        "sample": safety.get("survey_sample"), "every": safety.get("survey_interval_days"),
        "bias": safety.get("survey_nonresponse_bias"), "pooled": pooled,
        "width": city.get("width"), "height": city.get("height"),
        "cell_km": city.get("cell_km"), "population": f"{int(city.get('population', 0)):,}",
        "warmup": meta.get("warmup_days"), "dirty": bool((meta.get("git") or {}).get("dirty")),
        "failed": int((runs["status"] == "failed").sum()) if "status" in runs else 0,
        "parameters": table(heads, rows),
    }


# --------------------------------------------------------------------------- calibration
def calibration_html(results: Any) -> str:
    """The report of a loaded calibration (:func:`sim.calibration.results.load`) as HTML."""
    meta = results.metadata or {}
    facts = [*calibration_facts(meta), ("Commit", _git_text(meta)),
             ("Versions", _versions_text(meta))]
    return _environment().get_template("calibration.html.j2").render(
        title=f"Calibration '{meta.get('name', '?')}'", source=str(results.path),
        generated=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        dirty=bool((meta.get("git") or {}).get("dirty")), facts=facts,
        complete=meta.get("status") == "complete", warnings=list(meta.get("warnings") or []),
        sections=calibration_sections(results, lambda kind, caption: _figure(
            lambda: calibration_plots.draw(results, kind), caption)))


# --------------------------------------------------------------------------- the page
def report_html(results: Any) -> str:
    """The report of a loaded Results (or calibration) as one HTML string."""
    meta = results.metadata or {}
    kind = results_kind(results.path, meta)
    if kind == "calibration":
        return calibration_html(results)
    scen = _scenarios_of(results, kind)
    if kind == "run":
        title = f"Run of scenario '{next(iter(scen), '?')}'"
    elif kind == "comparison":
        title = "Comparison: " + " vs ".join(scen)
    else:
        title = f"Experiment '{meta.get('name', '?')}'"
    extra: dict[str, Any] = {}
    headline = _headline(results, kind, extra)
    return _environment().get_template("report.html.j2").render(
        kind=kind, title=title, source=str(results.path),
        generated=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        dirty=bool((meta.get("git") or {}).get("dirty")),
        what=_what_was_run(results, kind), headline=headline,
        figures=_figures(results, kind, extra), c=_caveats(results, kind))


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a results directory (``govsim report DIR``).

    Args:
        results_dir: a directory written by ``govsim run``, ``govsim compare``,
            ``govsim experiment run`` (``govsim experiment analyze`` adds the sensitivity
            tables) or ``govsim calibrate``.
        out: the HTML file (default ``DIR/report.html``), written atomically.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: ``results_dir`` is not a results directory.
        sim.calibration.CalibrationError: a calibration without an ensemble yet.
    """
    from sim.batch.results import load

    if ((Path(results_dir) / "metadata.json").is_file()
            and results_kind(results_dir) == "calibration"):
        res = calibration_plots.load(results_dir)
    else:
        res = load(results_dir)
    path = Path(out) if out else Path(results_dir) / "report.html"
    return atomic_write_text(path, report_html(res))
