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
  attribution of lever experiments and the sensitivity tables of ``analysis/``;
* **the key figures** of :mod:`sim.analysis.plots`;
* **caveats**: which numbers are assumed (the scenario descriptions say so), how perceived
  safety is surveyed (sample size per wave, Wilson interval), that the city is synthetic, and
  what the intervals do and do not cover.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import sim.analysis.plots as plots
from sim.outcomes import SUMMARY_SECTIONS as SECTIONS
from sim.outcomes import fmt, fmt_signed
from sim.outcomes import get as outcome

__all__ = ["report_html", "scenario_differences", "write_report"]

HEADLINE = ("closure_rate", "true_resolution_rate", "time_to_resolution_median_h",
            "time_to_discovery_median_h", "survey_share_safe", "perceived_safety_mean",
            "worker_utilisation", "harm")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 margin:0;color:#1d2327;background:#fff;line-height:1.45}
main{max-width:1120px;margin:0 auto;padding:1.5rem 1.5rem 4rem}
h1{font-size:1.7rem;margin:.2rem 0 .3rem}h2{font-size:1.3rem;margin-top:2.4rem;border-bottom:2px solid #dfe3e6;
 padding-bottom:.2rem}h3{font-size:1.05rem;margin-top:1.6rem}
.sub{color:#555;margin:0 0 1rem}nav{background:#f4f6f7;padding:.5rem .8rem;border-radius:6px;font-size:.92rem}
nav a{margin-right:1.1rem;color:#0b5cad;text-decoration:none}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #d5dadd;padding:.28rem .55rem;vertical-align:top}
th{background:#eef1f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.section td{background:#f7f8f9;font-weight:600}tr.star td{background:#fff8e1}
caption{caption-side:bottom;text-align:left;color:#555;font-size:.82rem;padding-top:.3rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;font-size:.92rem}
dl.facts dt{font-weight:600;color:#333}dl.facts dd{margin:0}
figure{margin:1rem 0 1.6rem}figure img{max-width:100%;height:auto;border:1px solid #e3e6e8}
figcaption{font-size:.85rem;color:#444;margin-top:.3rem}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem .8rem;margin:.8rem 0}
.note{color:#555;font-size:.88rem}code{background:#f1f3f4;padding:0 .25rem;border-radius:3px}
details{margin:.6rem 0}summary{cursor:pointer;font-weight:600}
ul.caveats li{margin-bottom:.45rem}.scroll{overflow-x:auto;max-width:100%}
"""


# --------------------------------------------------------------------------- small HTML helpers
class _Raw(str):
    """Text that is already HTML (not escaped again)."""


def _e(x: Any) -> str:
    return x if isinstance(x, _Raw) else html.escape(str(x), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, num_cols: Iterable[int] = (),
           caption: str | None = None, row_classes: Sequence[str] | None = None) -> str:
    num = set(num_cols)
    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = row_classes[i] if row_classes and i < len(row_classes) and row_classes[i] else ""
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for j, cell in enumerate(row):
            out.append(f'<td class="num">{_e(cell)}</td>' if j in num else f"<td>{_e(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _dl(items: Iterable[tuple[str, Any]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{_e(text)}</p>' if cls else f"<p>{_e(text)}</p>"


def _figure_html(fig, caption: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _try_figure(make, caption: str) -> str:
    """Draw one figure; a figure that cannot be drawn becomes a note, not a failed report."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = make()
        return _figure_html(fig, caption)
    except (ValueError, KeyError) as exc:
        return _p(f"(Figure not drawn: {caption} — {exc})", "note")


def _axes(figsize=(9.0, 4.6)):
    return plots.new_axes(figsize, pyplot=False)


def _label(name: str) -> tuple[str, str]:
    o = outcome(name)
    return o.label, o.unit


def _unit_cell(unit: str) -> str:
    return "" if unit in ("share", "0-1") else unit


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


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def scenario_differences(base: dict, other: dict, ignore: Sequence[str] = ("name", "description")
                         ) -> list[dict[str, str]]:
    """Settings that differ between two resolved scenario dicts (``Scenario.to_dict()``), as
    ``{"key", "baseline", "value", "description"}`` rows in schema order."""
    a, b = _flatten(base), _flatten(other)
    rows = []
    for key in list(dict.fromkeys([*a, *b])):
        if key in ignore or a.get(key) == b.get(key):
            continue
        rows.append({"key": key, "baseline": _show(a.get(key, "(not set)")),
                     "value": _show(b.get(key, "(not set)")), "description": _field_description(key)})
    return rows


def _diff_table(rows: list[dict[str, str]], base_name: str, name: str) -> str:
    if not rows:
        return _p(f"'{name}' has the same settings as '{base_name}'.")
    body = [(r["key"], r["baseline"], r["value"], r["description"]) for r in rows]
    return _table(["Setting", base_name, name, "What it is (sim/scenario.py)"], body)


def _plain_words(rows: list[dict[str, str]]) -> str:
    parts = [f"{r['key']} {r['baseline']} → {r['value']}" for r in rows[:12]]
    more = f" and {len(rows) - 12} more" if len(rows) > 12 else ""
    return "; ".join(parts) + more


# --------------------------------------------------------------------------- what was run
def _kind(res) -> str:
    meta = res.metadata or {}
    if meta.get("kind") == "run":
        return "run"
    if (Path(res.path) / "comparison.parquet").is_file() or meta.get("spec_file") == "govsim compare":
        return "compare"
    return "experiment"


def _git_text(meta: dict) -> str:
    git = meta.get("git") or {}
    commit = git.get("commit") or "unknown (not a git checkout)"
    return commit + (" — with uncommitted changes" if git.get("dirty") else "")


def _versions_text(meta: dict) -> str:
    v = meta.get("versions") or {}
    keys = [k for k in ("govsim", "python", "mesa", "numpy", "pandas", "scipy") if k in v]
    return ", ".join(f"{k} {v[k]}" for k in keys)


def _scenarios_of(res) -> dict[str, dict]:
    meta = res.metadata or {}
    if meta.get("kind") == "run":
        sc = meta.get("scenario") or {}
        return {str(meta.get("scenario_name") or sc.get("name", "scenario")): sc}
    return dict(meta.get("scenarios") or {})


def _baseline_label(res, scen: dict[str, dict]) -> str:
    f = Path(res.path) / "comparison.parquet"
    if f.is_file():
        b = pd.read_parquet(f, columns=["baseline"])["baseline"]
        if len(b):
            return str(b.iloc[0])
    return next(iter(scen))


def _what_was_run(res, kind: str) -> str:
    meta = res.metadata or {}
    runs = res.runs
    out = ['<h2 id="what">What was run</h2>']
    scen = _scenarios_of(res)
    if kind == "run":
        sc = next(iter(scen.values()), {})
        seed = (meta.get("seed") or {}).get("entropy")
        out.append(_dl([
            ("Scenario", f"{next(iter(scen), '?')} — {' '.join(str(sc.get('description', '')).split())}"),
            ("City", _city_text(sc)),
            ("Days", f"{meta.get('days')} (the first {meta.get('warmup_days')} are a warm-up, left out of the summary)"),
            ("Seed", f"{seed} (re-run with: govsim run … --seed {seed})"),
            ("Replications", "1 (a single run: the table shows no run-to-run interval)"),
            ("Commit", _git_text(meta)),
            ("Versions", _versions_text(meta)),
            ("Command", meta.get("command", "")),
            ("Started / finished", f"{meta.get('started', '?')} / {meta.get('finished', '?')}"),
        ]))
        from sim.scenario import Scenario

        rows = scenario_differences(Scenario().to_dict(), sc)
        out.append("<h3>Settings that differ from the documented defaults</h3>")
        out.append(_p("The defaults live in sim/scenario.py (a district of about 100,000 people after the "
                      "reform); this run changed:"))
        out.append(_diff_table(rows, "default value", "this run"))
        return "".join(out)

    seed = meta.get("seed") or {}
    done = int((runs["status"] == "done").sum()) if "status" in runs else len(runs)
    failed = int((runs["status"] == "failed").sum()) if "status" in runs else 0
    design = meta.get("design") or {}
    facts = [
        ("Experiment", f"{meta.get('name', '?')}" + (f" — {(meta.get('spec') or {}).get('description', '')}"
                                                      if (meta.get("spec") or {}).get("description") else "")),
        ("Scenarios", ", ".join(scen) or "?"),
        ("Design", _design_text(design, meta)),
        ("Replications", (f"{meta.get('replications')} per scenario and design point; replication r uses the same "
                         "seed in every scenario (common random numbers), so differences are paired")),
        ("Days", f"{meta.get('days')} per run (the first {meta.get('warmup_days')} are a warm-up, left out of the outcomes)"),
        ("Root seed", str(seed.get("root", seed)) if isinstance(seed, dict) else str(seed)),
        ("Runs", f"{done} done" + (f", {failed} FAILED (left out; see the error column of runs.parquet)"
                                   if failed else "") + f" of {meta.get('runs_planned', len(runs))} planned"),
        ("Commit", _git_text(meta)),
        ("Versions", _versions_text(meta)),
        ("Started / finished", f"{meta.get('started', '?')} / {meta.get('finished', '?')}"),
    ]
    out.append(_dl(facts))
    first = next(iter(scen.values()), {})
    if first:
        out.append(_p("City: " + _city_text(first) + "."))
    if len(scen) > 1:
        base = _baseline_label(res, scen)
        out.append(f"<h3>How the scenarios differ from the baseline '{_e(base)}'</h3>")
        for name, sc in scen.items():
            if name == base:
                continue
            rows = scenario_differences(scen[base], sc)
            if rows:
                out.append(_p(f"{name}: " + _plain_words(rows) + "."))
            out.append(_diff_table(rows, base, name))
    factors = meta.get("factors") or []
    if factors:
        out.append("<h3>Factors</h3>")
        frows = []
        levers = meta.get("levers") or {}
        dfac = (design.get("factors") or {})
        problem = design.get("problem") or {}
        bounds = dict(zip(problem.get("names", []), problem.get("bounds", []), strict=False))
        for f in factors:
            if f in levers:
                lv = "; ".join(f"{i}: " + ", ".join(f"{k} = {_show(v)}" for k, v in d.items())
                               for i, d in enumerate(levers[f]))
                frows.append((f, "lever (recorded as its level index)", lv, ""))
            elif f in dfac:
                frows.append((f, "levels", ", ".join(map(_show, dfac[f])), _field_description(f)))
            elif f in bounds:
                lo, hi = bounds[f]
                frows.append((f, "range", f"{lo:g} – {hi:g}", _field_description(f)))
            else:
                frows.append((f, "", "", _field_description(f)))
        out.append(_table(["Factor", "Kind", "Values", "What it is"], frows))
    return "".join(out)


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
    return (f"synthetic lattice of {c.get('width')} × {c.get('height')} cells of {c.get('cell_km')} km, "
            f"{int(c.get('population', 0)):,} people, {g} grids")


# --------------------------------------------------------------------------- headline tables
def _run_table(res) -> str:
    row = res.runs.iloc[0].to_dict()
    rows, classes = [], []
    for section, keys in SECTIONS:
        present = [k for k in keys if k in row]
        if not present:
            continue
        rows.append((section, "", ""))
        classes.append("section")
        for k in present:
            label, unit = _label(k)
            val = fmt(row[k], unit)
            u = _unit_cell(unit)
            if k == "survey_share_safe":
                val += f" [{fmt(row.get('survey_ci_low'), 'share')}, {fmt(row.get('survey_ci_high'), 'share')}]"
                u = (f"95% Wilson CI; n = {int(row.get('survey_n') or 0):,} residents in "
                     f"{int(row.get('survey_waves') or 0)} wave(s)")
            rows.append((label, val, u))
            classes.append("")
    warm = (res.metadata or {}).get("warmup_days")
    cap = (f"One run; incidents occurring from day {warm} on. Shares in %. The survey's interval is its "
           "sampling interval (Wilson); a single run has no interval for run-to-run noise: use govsim compare.")
    return _table(["Outcome", "Value", "Unit / interval"], rows, num_cols=[1], caption=cap, row_classes=classes)


def _comparison_frame(res) -> pd.DataFrame:
    from sim.analysis.compare import compare

    f = Path(res.path) / "comparison.parquet"
    if f.is_file():
        return pd.read_parquet(f)
    return compare(res)


def _compare_table(comp: pd.DataFrame) -> str:
    rows, classes = [], []
    for _, sub in comp.groupby("outcome", sort=False):
        for i, (_, r) in enumerate(sub.iterrows()):
            unit = r.get("unit", "") or ""
            mean = f"{fmt(r['mean'], unit)} [{fmt(r['ci_low'], unit)}, {fmt(r['ci_high'], unit)}]"
            if r["scenario"] == r["baseline"]:
                diff, p, unp, star = "(baseline)", "", "", ""
            else:
                diff = (f"{fmt_signed(r['diff'], unit)} [{fmt_signed(r['diff_ci_low'], unit)}, "
                        f"{fmt_signed(r['diff_ci_high'], unit)}]")
                unp = (f"[{fmt_signed(r.get('unpaired_ci_low'), unit)}, {fmt_signed(r.get('unpaired_ci_high'), unit)}]"
                       if "unpaired_ci_low" in r else "")
                p = f"{r['p_value']:.3g}" if pd.notna(r.get("p_value")) else "–"
                star = "*" if bool(r.get("distinguishable")) else ""
            u = _unit_cell(unit)
            label = (f"{r['label']} ({u})" if u else str(r["label"])) if i == 0 else ""
            rows.append((label, r["scenario"], mean, diff + (" *" if star else ""), unp, p))
            classes.append("star" if star else "")
    cap = ("Mean over replications with a 95% t-interval; difference = scenario − baseline, mean of the paired "
           "per-replication differences with a 95% paired t-interval (replication r of every scenario shares its "
           "seed: common random numbers). * the paired interval excludes 0. p: paired t-test, not adjusted for "
           "the many outcomes. The unpaired (Welch) interval shows what pairing buys.")
    return _table(["Outcome", "Scenario", "Mean [95% CI]", "Difference to baseline [95% CI]",
                   "Unpaired difference CI", "p"], rows, num_cols=[2, 3, 4, 5], caption=cap, row_classes=classes)


def _summary_table(res, outcomes: Sequence[str]) -> str:
    """Means by scenario and factor levels (full factorial), or by scenario."""
    from sim.analysis.compare import summarise_runs

    meta = res.metadata or {}
    runs = res.runs
    if "status" in runs:
        runs = runs[runs["status"] == "done"]
    factors = [f for f in (meta.get("factors") or []) if f in runs]
    kind = (meta.get("design") or {}).get("kind", "full_factorial")
    levers = meta.get("levers") or {}
    by_cells = bool(factors) and kind == "full_factorial" and runs[factors].drop_duplicates().shape[0] <= 64
    key_cols = ["scenario", *(factors if by_cells else [])]

    binary = [f for f in factors if f in levers and len(levers[f]) == 2]

    def cell_name(row) -> str:
        parts = [str(row["scenario"])] if runs["scenario"].nunique() > 1 or not by_cells else []
        if by_cells and binary:  # on/off levers: name the ones switched on
            on = [f for f in binary if int(row[f]) == 1]
            parts.append("all levers off" if not on else "all levers on" if len(on) == len(binary) and
                         len(binary) > 1 else " + ".join(on) + " on")
        for f in (factors if by_cells else []):
            if f in binary:
                continue
            v = row[f]
            if f in levers:
                parts.append(f"{f} level {v}")
            else:
                parts.append(f"{f} = {_show(v)}")
        return ", ".join(parts)

    r2 = runs.assign(_cell=runs[key_cols].apply(cell_name, axis=1))
    s = summarise_runs(r2, list(outcomes), by="_cell")
    cells = list(dict.fromkeys(r2["_cell"]))
    heads = ["Scenario / factor levels" if by_cells else "Scenario", "runs"]
    outs = [o for o in outcomes if o in set(s["outcome"])]
    for o in outs:
        label, unit = _label(o)
        u = _unit_cell(unit)
        heads.append(f"{label} ({u})" if u else label)
    rows = []
    for c in cells:
        sub = s[s["_cell"] == c].set_index("outcome")
        row = [c, str(int(sub["n"].max())) if len(sub) else "0"]
        for o in outs:
            r = sub.loc[o]
            row.append(f"{fmt(r['mean'], r['unit'])} [{fmt(r['ci_low'], r['unit'])}, {fmt(r['ci_high'], r['unit'])}]")
        rows.append(row)
    what = ("by scenario and factor levels" if by_cells else
            "by scenario, over all design points" if factors else "by scenario")
    cap = (f"Mean [95% t-interval over runs] {what}. With few runs a t-interval of a share can pass 100%: "
           "it is an interval for the mean, not a range of possible values.")
    if len(rows) <= 6:  # few cells: outcomes down the side reads better
        t_heads = ["Outcome", *[r[0] for r in rows]]
        t_rows = [["runs", *[r[1] for r in rows]]] + [[heads[j], *[r[j] for r in rows]] for j in range(2, len(heads))]
        return _table(t_heads, t_rows, num_cols=range(1, len(t_heads)), caption=cap)
    return _table(heads, rows, num_cols=range(1, len(heads)), caption=cap)


def _attribution_section(res, outcomes: Sequence[str]) -> tuple[str, pd.DataFrame | None]:
    from sim.analysis.compare import attribute

    meta = res.metadata or {}
    levers = list((meta.get("levers") or {}).keys())
    if not levers:
        return "", None
    scen = list(dict.fromkeys(res.runs["scenario"]))
    try:
        att = attribute(res, levers=levers, outcomes=list(outcomes), scenario=scen[0])
    except ValueError as exc:
        return _p(f"No Shapley attribution: {exc}", "note"), None
    if att.empty:
        return "", None
    heads = ["Outcome", "All levers off", *levers, "All levers on", "Total effect"]
    rows = []
    for o, sub in att.groupby("outcome", sort=False):
        unit = sub["unit"].iloc[0]

        def cell(r, signed: bool, unit: str = unit) -> str:
            f = fmt_signed if signed else fmt
            return f"{f(r['value'], unit)} [{f(r['ci_low'], unit)}, {f(r['ci_high'], unit)}]"
        by_kind = {(r["kind"], r["lever"]): r for _, r in sub.iterrows()}
        before = next(r for (k, _), r in by_kind.items() if k == "before")
        after = next(r for (k, _), r in by_kind.items() if k == "after")
        total = next(r for (k, _), r in by_kind.items() if k == "total")
        u = _unit_cell(unit)
        rows.append([f"{sub['label'].iloc[0]} ({u})" if u else sub["label"].iloc[0], cell(before, False),
                     *[cell(by_kind[("lever", lv)], True) for lv in levers], cell(after, False), cell(total, True)])
    cap = ("Shapley values of each lever over all 2^k on/off combinations, per replication, with 95% t-intervals "
           "over replications. Efficiency: in every replication the levers' values add up exactly to the total "
           "effect (all on − all off), so they also do on average.")
    html_ = "<h3>Attribution of the reform to its levers (Shapley values)</h3>" + _table(
        heads, rows, num_cols=range(1, len(heads)), caption=cap)
    return html_, att


def _sensitivity_tables(res) -> tuple[str, dict[str, pd.DataFrame]]:
    adir = Path(res.path) / "analysis"
    frames: dict[str, pd.DataFrame] = {}
    for name in ("sobol", "morris", "factorial_effects", "src"):
        f = adir / f"{name}.parquet"
        if f.is_file():
            frames[name] = pd.read_parquet(f)
    if not frames:
        return "", frames
    out = ["<h3>Sensitivity analysis (analysis/)</h3>"]
    for name, df in frames.items():
        def lab(o: str) -> str:
            return _label(o)[0]
        if name == "sobol":
            rows = [(lab(r["outcome"]), r["factor"], _num(r["S1"]), _pm(r["S1_conf"]), _num(r["ST"]), _pm(r["ST_conf"]),
                     r.get("note", "") or "") for _, r in df.iterrows()]
            out.append(_table(["Outcome", "Factor", "S1", "± (95%)", "ST", "± (95%)", "Note"], rows,
                              num_cols=[2, 3, 4, 5],
                              caption="Sobol' first-order (S1) and total (ST) indices with 95% bootstrap half-widths. "
                                      "Small designs give wide intervals and even negative S1: read them as noise."))
        elif name == "morris":
            rows = [(lab(r["outcome"]), r["factor"], _num(r["mu_star"]), _pm(r["mu_star_conf"]), _num(r["mu"]),
                     _num(r["sigma"]), r.get("note", "") or "") for _, r in df.iterrows()]
            out.append(_table(["Outcome", "Factor", "μ*", "± (95%)", "μ", "σ", "Note"], rows, num_cols=[2, 3, 4, 5],
                              caption="Morris screening: μ* mean absolute elementary effect (outcome units per "
                                      "factor range), σ its spread (interactions, non-linearity)."))
        elif name == "factorial_effects":
            rows = [(lab(r["outcome"]), r["factor"], r["level"], _num(r["mean"]),
                     f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]", int(r["n"]), _num(r["effect"]))
                    for _, r in df.iterrows()]
            out.append(_table(["Outcome", "Factor", "Level", "Mean", "95% CI", "n", "Effect"], rows,
                              num_cols=[3, 4, 5, 6], caption="Main effects of each factor level (runs pooled over "
                                                             "the other factors)."))
        else:
            rows = [(lab(r["outcome"]), r["factor"], _num(r["src"]), f"[{_num(r['src_low'])}, {_num(r['src_high'])}]",
                     _num(r["r2"])) for _, r in df.iterrows()]
            out.append(_table(["Outcome", "Factor", "SRC", "95% CI", "R²"], rows, num_cols=[2, 3, 4],
                              caption="Standardised regression coefficients of a linear fit over design points."))
    return "".join(out), frames


def _num(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "–"
    return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _pm(x: Any) -> str:
    s = _num(x)
    return s if s == "–" else f"±{s}"


# --------------------------------------------------------------------------- figures
def _figures(res, kind: str, extra: dict[str, Any]) -> str:
    out = ['<h2 id="figures">Figures</h2>']
    ts = res.timeseries
    runs = res.runs
    if kind == "run":
        for o, cap in (("closure_rate", "Official closure rate by day (closed, including on paper, / recorded)."),
                       ("backlog", "Known cases not yet closed at the end of each day."),
                       ("perceived_safety", "Residents' mean perceived safety (the model's own mean, no sampling)."),
                       ("survey_share_safe", ("Survey waves: share answering 'safe', with each wave's 95% Wilson "
                                             "interval."))):
            if ts is not None and o in ts:
                out.append(_try_figure(lambda o=o: plots._figure_of(plots.timeseries(res, o, ax=_axes())), cap))
        if res.cells is not None:
            for v, cap in (("perceived_safety", ("Mean perceived safety of each cell's residents at the end; thin lines "
                                                "are grid boundaries, thick ones townships (synthetic city).")),
                           ("incidents", "Incidents per cell over the run.")):
                out.append(_try_figure(lambda v=v: plots._figure_of(plots.city_map(
                    res, v, ax=_axes((7.2, 6.4)), boundaries=("grid", "township", "county"))), cap))
        if res.incidents is not None:
            for by, cap in (("first_channel", ("Time from report to true resolution by the channel that found the "
                                              "incident (ECDF, log scale).")),
                            ("route", "Time from report to true resolution by handling route (tier).")):
                out.append(_try_figure(lambda by=by: plots._figure_of(plots.resolution_ecdf(res, by=by, ax=_axes())),
                                       cap))
        return "".join(out)
    if "comparison" in extra:
        comp = extra["comparison"]
        nrows = int((comp["scenario"] != comp["baseline"]).sum())
        out.append(_try_figure(lambda: plots._figure_of(plots.forest(comp, ax=_axes((9.5, 0.42 * nrows + 2.4)))),
                               "Paired differences to the baseline, as % of the baseline mean of each outcome, with "
                               "95% paired intervals (filled: the interval excludes 0)."))
        for o in ("closure_rate", "true_resolution_rate", "time_to_resolution_median_h"):
            if o in set(comp["outcome"]):
                out.append(_try_figure(lambda o=o: plots._figure_of(plots.forest(comp, ax=_axes((9, 2.8)), outcome=o)),
                                       f"{_label(o)[0]}: paired difference in its own unit."))
    if ts is not None:
        for o in ("closure_rate", "backlog", "perceived_safety"):
            if o in ts:
                out.append(_try_figure(lambda o=o: plots._figure_of(plots.timeseries(res, o, ax=_axes())),
                                       f"{_label(o)[0]} by day and scenario, 95% t-interval over runs."))
    att = extra.get("attribution")
    if att is not None:
        for o in dict.fromkeys(att["outcome"]):
            if o in HEADLINE[:4] or o == "survey_share_safe":
                out.append(_try_figure(lambda o=o: plots._figure_of(plots.attribution_waterfall(
                    att, o, ax=_axes((8.5, 4.8)))), f"{_label(o)[0]}: the reform's effect split into the levers' "
                                                    "Shapley values."))
    meta = res.metadata or {}
    factors = [f for f in (meta.get("factors") or []) if f in runs]
    if factors and (meta.get("design") or {}).get("kind") in ("full_factorial", "latin_hypercube", None) \
            and not meta.get("levers"):
        for o in ("closure_rate", "true_resolution_rate"):
            if o in runs:
                def make(o=o):
                    fig, _ = plots.draw(res, "factor", o)
                    return fig
                out.append(_try_figure(make, f"{_label(o)[0]} against each factor: mean and 95% t-interval over "
                                             "runs at each level (dots: runs)."))
    frames = extra.get("sensitivity") or {}
    for name in ("sobol", "morris", "src"):
        if name in frames:
            df = frames[name]
            key = [o for o in HEADLINE if o in set(df["outcome"])]
            df = df[df["outcome"].isin(key)] if key else df
            n = len(df) + df["outcome"].nunique()
            out.append(_try_figure(lambda df=df, n=n: plots._figure_of(plots.sensitivity_bars(
                df, ax=_axes((9.5, max(3.0, 0.34 * n + 1.6))))), f"{name} sensitivity indices of the headline outcomes with 95% intervals (all outcomes are in the "
                "table above)."))
    if len(out) == 1:
        out.append(_p("No figures: this directory has no time series, comparison, levers or analysis.", "note"))
    return "".join(out)


# --------------------------------------------------------------------------- caveats
def _caveats(res, kind: str) -> str:
    from sim.analysis.docgen import iter_parameters

    meta = res.metadata or {}
    scen = _scenarios_of(res)
    first = next(iter(scen.values()), {})
    flat = {k: _flatten(v) for k, v in scen.items()}
    out = ['<h2 id="caveats">Caveats</h2><ul class="caveats">']
    params = [p for p in iter_parameters() if "ssumed" in (p.field.description or "") and "[]" not in p.key]
    differing = [p.key for p in params if len({_show(f.get(p.key)) for f in flat.values()}) > 1]
    out.append(f"<li><b>Assumed numbers.</b> {len(params)} parameters have no source and are marked "
               "“Assumed” in sim/scenario.py; results depend on them and the intervals below do not cover that "
               "uncertainty (a sensitivity experiment does)."
               + (f" The scenarios here differ in {len(differing)} of them." if len(scen) > 1 else "") + "</li>")
    sf = first.get("safety") or {}
    sample, every = sf.get("survey_sample"), sf.get("survey_interval_days")
    bias = sf.get("survey_nonresponse_bias")
    waves = res.runs["survey_waves"].iloc[0] if "survey_waves" in res.runs and len(res.runs) else None
    n = res.runs["survey_n"].iloc[0] if "survey_n" in res.runs and len(res.runs) else None
    pooled = (f" After the warm-up each run pooled {int(waves)} wave(s), n = {int(n):,}." if waves is not None
              and pd.notna(waves) and n is not None and pd.notna(n) else "")
    out.append("<li><b>How perceived safety is surveyed.</b> “Perceived safety, mean” is the model's own mean over "
               f"all residents, with no sampling error. The survey draws {_e(sample)} residents every {_e(every)} days "
               "(a phone survey); each answers “safe” with probability equal to their perceived safety"
               + (f" plus an acquiescence bias of {_e(bias)}" if bias else "") +
               ". Its share has a 95% Wilson score interval, which matters near 95–99%, where differences "
               f"between scenarios are small.{_e(pooled)}"
               + (" Across replications, intervals are t-intervals of the pooled share." if kind != "run" else "")
               + "</li>")
    c = first.get("city") or {}
    out.append("<li><b>The city is synthetic.</b> " + _e(
        f"A lattice of {c.get('width')} × {c.get('height')} cells of {c.get('cell_km')} km with "
        f"{int(c.get('population', 0)):,} people placed around urban centres plus a rural background; counties, "
        "townships, communities and grids come from a population-balanced partition of that lattice, not from the "
        "real boundaries of Pingxiang or any other place. Maps show this synthetic geography.") + "</li>")
    if kind == "run":
        out.append("<li><b>One run.</b> A single stochastic run: another seed gives other numbers. Compare "
                   "scenarios with <code>govsim compare</code>, which replicates them with paired seeds.</li>")
    else:
        out.append("<li><b>What the intervals cover.</b> 95% t-intervals over replications: the model's stochastic "
                   "noise only. p-values are per outcome and not adjusted for testing many outcomes; with ~12 "
                   "outcomes, one “distinguishable” difference in 20 tests is expected by chance.</li>")
    warm = meta.get("warmup_days")
    if warm:
        out.append(f"<li><b>Warm-up.</b> The city starts with no backlog and no hidden problems; incidents of the "
                   f"first {_e(warm)} days are left out of the outcomes.</li>")
    if (meta.get("git") or {}).get("dirty"):
        out.append("<li><b>Uncommitted code.</b> The work tree had uncommitted changes when this ran; the commit "
                   "alone does not reproduce it.</li>")
    failed = int((res.runs["status"] == "failed").sum()) if "status" in res.runs else 0
    if failed:
        out.append(f"<li><b>Failed runs.</b> {failed} run(s) failed and are left out of every number.</li>")
    out.append("</ul>")
    rows = []
    for p in params:
        vals = [_show(f.get(p.key)) for f in flat.values()]
        rows.append((p.key, " / ".join(dict.fromkeys(vals)), p.field.description or ""))
    heads = ["Parameter", "Value used" + (" (by scenario)" if len(scen) > 1 else ""), "Description"]
    out.append(f"<details><summary>The {len(params)} assumed parameters and their values</summary>"
               + _table(heads, rows) + "</details>")
    return "".join(out)


# --------------------------------------------------------------------------- the page
def report_html(results) -> str:
    """The report of a loaded Results as one HTML string."""
    kind = _kind(results)
    meta = results.metadata or {}
    scen = _scenarios_of(results)
    if kind == "run":
        title = f"Run of scenario '{next(iter(scen), '?')}'"
    elif kind == "compare":
        title = "Comparison: " + " vs ".join(scen)
    else:
        title = f"Experiment '{meta.get('name', '?')}'"
    body = [f"<h1>{_e(title)}</h1>",
            _p(f"govsim report of {results.path} — generated {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')}",
               "sub"),
            ('<nav><a href="#what">What was run</a><a href="#headline">Headline results</a>'
            '<a href="#figures">Figures</a><a href="#caveats">Caveats</a></nav>')]
    if (meta.get("git") or {}).get("dirty"):
        body.append('<div class="warn">The code had uncommitted changes when these results were made.</div>')
    body.append(_what_was_run(results, kind))
    body.append('<h2 id="headline">Headline results</h2>')
    extra: dict[str, Any] = {}
    runs = results.runs
    done = runs[runs["status"] == "done"] if "status" in runs else runs
    if kind == "run":
        body.append(_run_table(results))
    else:
        if done.empty:
            body.append(_p("No run finished: there is nothing to summarise.", "warn"))
        else:
            if done["scenario"].nunique() > 1 and "replication" in done:
                try:
                    comp = _comparison_frame(results)
                    extra["comparison"] = comp
                    body.append(f"<h3>Each scenario against '{_e(comp['baseline'].iloc[0])}'</h3>")
                    body.append(_compare_table(comp))
                except ValueError as exc:
                    body.append(_p(f"No paired comparison: {exc}", "note"))
            if kind == "experiment":
                outcomes = [o for o in HEADLINE if o in done]
                body.append("<h3>Outcomes by " + ("scenario and factor levels" if meta.get("factors") else "scenario")
                            + "</h3>")
                body.append(_summary_table(results, outcomes))
                att_html, att = _attribution_section(results, [o for o in HEADLINE if o in done])
                body.append(att_html)
                if att is not None:
                    extra["attribution"] = att
                sens_html, frames = _sensitivity_tables(results)
                if sens_html:
                    body.append(sens_html)
                    extra["sensitivity"] = frames
                elif (meta.get("design") or {}).get("kind") in ("sobol", "morris", "latin_hypercube"):
                    body.append(_p(f"Sensitivity indices are not computed yet: run govsim experiment analyze "
                                   f"{results.path}, then make the report again.", "note"))
    body.append(_figures(results, kind, extra))
    body.append(_caveats(results, kind))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)} — govsim report</title><style>{_CSS}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a results directory (``govsim report DIR``).

    Args:
        results_dir: a directory written by ``govsim run``, ``govsim compare`` or
            ``govsim experiment run`` (``govsim experiment analyze`` adds the sensitivity
            tables).
        out: the HTML file (default ``DIR/report.html``).

    Returns:
        The path written.

    Raises:
        FileNotFoundError: ``results_dir`` is not a results directory.
    """
    from sim.batch.results import load

    res = load(results_dir)
    text = report_html(res)
    path = Path(out) if out else Path(results_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
