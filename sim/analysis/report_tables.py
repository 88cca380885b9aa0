"""The tables of the HTML report (:mod:`sim.analysis.report`), as data for its templates.

Each function returns a :class:`Table` (headers, rows of plain text, which columns are numbers,
a caption) or a list of blocks (a heading, a paragraph or a table: see :func:`h3`, :func:`para`
and :func:`table_block`); the template ``templates/macros.html.j2`` turns them into HTML and
escapes every cell. Numbers are formatted by :mod:`sim.outcomes`. The tables of a calibration
(``calibration_*``, ``identifiability_table``, ``waves_table``, ``abc_table``,
``emulator_table``, ``screening_table``) read the tables of :mod:`sim.calibration.results`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim import outcomes as registry
from sim.analysis.compare import attribute, done_runs, summarise_runs
from sim.analysis.tables import unit_column

#: The outcomes of the report's headline tables and key figures.
HEADLINE = ("closure_rate", "true_resolution_rate", "time_to_resolution_median_h",
            "time_to_discovery_median_h", "survey_share_safe", "perceived_safety_mean",
            "worker_utilisation", "harm")


@dataclass
class Table:
    """A table for the template: every cell is text, escaped when rendered.

    Attributes:
        headers: column headers.
        rows: rows of cells.
        num_cols: indices of right-aligned (numeric) columns.
        caption: text under the table, or None.
        row_classes: a CSS class per row (``section``, ``star``) or empty; may be shorter than
            ``rows``.
    """

    headers: Sequence[Any]
    rows: list[Sequence[Any]]
    num_cols: frozenset[int] = field(default_factory=frozenset)
    caption: str | None = None
    row_classes: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.rows = [list(r) for r in self.rows]
        self.num_cols = frozenset(self.num_cols)

    def row_class(self, i: int) -> str:
        return self.row_classes[i] if i < len(self.row_classes) and self.row_classes[i] else ""


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], *, num_cols: Iterable[int] = (),
          caption: str | None = None, row_classes: Sequence[str] = ()) -> Table:
    return Table(headers, list(rows), frozenset(num_cols), caption, row_classes)


# --------------------------------------------------------------------------- blocks
def h3(text: str) -> dict[str, Any]:
    return {"kind": "h3", "text": text}


def para(text: str, cls: str | None = None) -> dict[str, Any]:
    return {"kind": "p", "text": text, "cls": cls}


def table_block(t: Table) -> dict[str, Any]:
    return {"kind": "table", "table": t}


def show(v: Any) -> str:
    """A setting's value as a scenario file writes it (``true``, JSON lists)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _with_unit_cell(label: str, unit: str) -> str:
    u = unit_column(unit)
    return f"{label} ({u})" if u else label


def _ci(r: Any, unit: str, signed: bool = False, value: str = "mean") -> str:
    """``value [low, high]`` of a row with ``ci_low``/``ci_high``, in the outcome's unit."""
    f = registry.fmt_signed if signed else registry.fmt
    return f"{f(r[value], unit)} [{f(r['ci_low'], unit)}, {f(r['ci_high'], unit)}]"


def _num(x: Any) -> str:
    """An index or effect: :func:`sim.outcomes.fmt_short` (non-numbers as text)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return registry.fmt_short(v)


def _pm(x: Any) -> str:
    s = _num(x)
    return s if s == "–" else f"±{s}"


# --------------------------------------------------------------------------- headline tables
def run_table(res: Any) -> Table:
    """The summary of a single run by section, with the survey's Wilson interval."""
    row = res.runs.iloc[0].to_dict()
    rows, classes = [], []
    for section, keys in registry.SUMMARY_SECTIONS:
        present = [k for k in keys if k in row]
        if not present:
            continue
        rows.append((section, "", ""))
        classes.append("section")
        for k in present:
            unit = registry.unit(k)
            val = registry.fmt(row[k], unit)
            u = unit_column(unit)
            if k == "survey_share_safe":
                val += (f" [{registry.fmt(row.get('survey_ci_low'), 'share')}, "
                        f"{registry.fmt(row.get('survey_ci_high'), 'share')}]")
                u = (f"95% Wilson CI; n = {int(row.get('survey_n') or 0):,} residents in "
                     f"{int(row.get('survey_waves') or 0)} wave(s)")
            rows.append((registry.label(k), val, u))
            classes.append("")
    warm = (res.metadata or {}).get("warmup_days")
    cap = (f"One run; incidents occurring from day {warm} on. Shares in %. The survey's interval "
           "is its sampling interval (Wilson); a single run has no interval for run-to-run "
           "noise: use govsim compare.")
    return table(["Outcome", "Value", "Unit / interval"], rows, num_cols=[1], caption=cap,
                 row_classes=classes)


def compare_table(comp: pd.DataFrame) -> Table:
    """The paired comparison (:func:`sim.analysis.compare.compare`): means, differences to the
    baseline with paired and unpaired intervals, p-values; starred rows are distinguishable."""
    rows, classes = [], []
    for _, sub in comp.groupby("outcome", sort=False):
        for i, (_, r) in enumerate(sub.iterrows()):
            unit = r.get("unit", "") or ""
            mean = _ci(r, unit)
            if r["scenario"] == r["baseline"]:
                diff, p, unp, star = "(baseline)", "", "", ""
            else:
                fs = registry.fmt_signed
                diff = (f"{fs(r['diff'], unit)} [{fs(r['diff_ci_low'], unit)}, "
                        f"{fs(r['diff_ci_high'], unit)}]")
                unp = (f"[{fs(r.get('unpaired_ci_low'), unit)}, "
                       f"{fs(r.get('unpaired_ci_high'), unit)}]" if "unpaired_ci_low" in r else "")
                p = f"{r['p_value']:.3g}" if pd.notna(r.get("p_value")) else "–"
                star = "*" if bool(r.get("distinguishable")) else ""
            label = _with_unit_cell(str(r["label"]), unit) if i == 0 else ""
            rows.append((label, r["scenario"], mean, diff + (" *" if star else ""), unp, p))
            classes.append("star" if star else "")
    cap = ("Mean over replications with a 95% t-interval; difference = scenario − baseline, mean "
           "of the paired per-replication differences with a 95% paired t-interval (replication "
           "r of every scenario shares its seed: common random numbers). * the paired interval "
           "excludes 0. p: paired t-test, not adjusted for the many outcomes. The unpaired "
           "(Welch) interval shows what pairing buys.")
    return table(["Outcome", "Scenario", "Mean [95% CI]", "Difference to baseline [95% CI]",
                  "Unpaired difference CI", "p"], rows, num_cols=[2, 3, 4, 5], caption=cap,
                 row_classes=classes)


def summary_table(res: Any, outcomes: Sequence[str]) -> Table:
    """Means by scenario and factor levels (full factorial), or by scenario."""
    meta = res.metadata or {}
    runs = done_runs(res.runs)
    factors = [f for f in (meta.get("factors") or []) if f in runs]
    kind = (meta.get("design") or {}).get("kind", "full_factorial")
    levers = meta.get("levers") or {}
    by_cells = (bool(factors) and kind == "full_factorial"
                and runs[factors].drop_duplicates().shape[0] <= 64)
    key_cols = ["scenario", *(factors if by_cells else [])]

    binary = [f for f in factors if f in levers and len(levers[f]) == 2]

    def cell_name(row: pd.Series) -> str:
        parts = [str(row["scenario"])] if runs["scenario"].nunique() > 1 or not by_cells else []
        if by_cells and binary:  # on/off levers: name the ones switched on
            on = [f for f in binary if int(row[f]) == 1]
            parts.append("all levers off" if not on else "all levers on"
                         if len(on) == len(binary) and len(binary) > 1 else " + ".join(on) + " on")
        for f in (factors if by_cells else []):
            if f in binary:
                continue
            parts.append(f"{f} level {row[f]}" if f in levers else f"{f} = {show(row[f])}")
        return ", ".join(parts)

    r2 = runs.assign(_cell=runs[key_cols].apply(cell_name, axis=1))
    s = summarise_runs(r2, list(outcomes), by="_cell")
    cells = list(dict.fromkeys(r2["_cell"]))
    heads = ["Scenario / factor levels" if by_cells else "Scenario", "runs"]
    outs = [o for o in outcomes if o in set(s["outcome"])]
    heads += [_with_unit_cell(registry.label(o), registry.unit(o)) for o in outs]
    rows = []
    for c in cells:
        sub = s[s["_cell"] == c].set_index("outcome")
        row = [c, str(int(sub["n"].max())) if len(sub) else "0"]
        row += [_ci(sub.loc[o], sub.loc[o, "unit"]) for o in outs]
        rows.append(row)
    what = ("by scenario and factor levels" if by_cells else
            "by scenario, over all design points" if factors else "by scenario")
    cap = (f"Mean [95% t-interval over runs] {what}. With few runs a t-interval of a share can "
           "pass 100%: it is an interval for the mean, not a range of possible values.")
    if len(rows) <= 6:  # few cells: outcomes down the side reads better
        t_heads = ["Outcome", *[r[0] for r in rows]]
        t_rows = [["runs", *[r[1] for r in rows]]] + [[heads[j], *[r[j] for r in rows]]
                                                       for j in range(2, len(heads))]
        return table(t_heads, t_rows, num_cols=range(1, len(t_heads)), caption=cap)
    return table(heads, rows, num_cols=range(1, len(heads)), caption=cap)


def attribution_blocks(res: Any, outcomes: Sequence[str]) -> tuple[list[dict], pd.DataFrame | None]:
    """The Shapley attribution of a lever experiment (:func:`sim.analysis.compare.attribute`):
    blocks for the report and the frame (None without levers or values)."""
    meta = res.metadata or {}
    levers = list((meta.get("levers") or {}).keys())
    if not levers:
        return [], None
    scen = list(dict.fromkeys(res.runs["scenario"]))
    try:
        att = attribute(res, levers=levers, outcomes=list(outcomes), scenario=scen[0])
    except ValueError as exc:
        return [para(f"No Shapley attribution: {exc}", "note")], None
    if att.empty:
        return [], None
    heads = ["Outcome", "All levers off", *levers, "All levers on", "Total effect"]
    rows = []
    for _, sub in att.groupby("outcome", sort=False):
        unit = sub["unit"].iloc[0]
        lever_rows = sub[sub["kind"] == "lever"].set_index("lever")

        def first(kind: str, sub: pd.DataFrame = sub) -> pd.Series:
            return sub[sub["kind"] == kind].iloc[0]

        rows.append([_with_unit_cell(sub["label"].iloc[0], unit),
                     _ci(first("before"), unit, value="value"),
                     *[_ci(lever_rows.loc[lv], unit, signed=True, value="value")
                       for lv in levers],
                     _ci(first("after"), unit, value="value"),
                     _ci(first("total"), unit, signed=True, value="value")])
    cap = ("Shapley values of each lever over all 2^k on/off combinations, per replication, with "
           "95% t-intervals over replications. Efficiency: in every replication the levers' "
           "values add up exactly to the total effect (all on − all off), so they also do on "
           "average.")
    return [h3("Attribution of the reform to its levers (Shapley values)"),
            table_block(table(heads, rows, num_cols=range(1, len(heads)), caption=cap))], att


def sensitivity_blocks(frames: dict[str, pd.DataFrame]) -> list[dict]:
    """The frames of ``govsim experiment analyze`` (:mod:`sim.analysis.sensitivity`) as tables."""
    shown = [n for n in ("sobol", "morris", "factorial_effects", "src") if n in frames]
    if not shown:
        return []
    out = [h3("Sensitivity analysis (analysis/)")]
    for name in shown:
        df = frames[name]
        lab = registry.label
        if name == "sobol":
            rows = [(lab(r["outcome"]), r["factor"], _num(r["S1"]), _pm(r["S1_conf"]),
                     _num(r["ST"]), _pm(r["ST_conf"]), r.get("note", "") or "")
                    for _, r in df.iterrows()]
            t = table(["Outcome", "Factor", "S1", "± (95%)", "ST", "± (95%)", "Note"], rows,
                      num_cols=[2, 3, 4, 5],
                      caption="Sobol' first-order (S1) and total (ST) indices with 95% bootstrap "
                              "half-widths. Small designs give wide intervals and even negative "
                              "S1: read them as noise.")
        elif name == "morris":
            rows = [(lab(r["outcome"]), r["factor"], _num(r["mu_star"]), _pm(r["mu_star_conf"]),
                     _num(r["mu"]), _num(r["sigma"]), r.get("note", "") or "")
                    for _, r in df.iterrows()]
            t = table(["Outcome", "Factor", "μ*", "± (95%)", "μ", "σ", "Note"], rows,
                      num_cols=[2, 3, 4, 5],
                      caption="Morris screening: μ* mean absolute elementary effect (outcome "
                              "units per factor range), σ its spread (interactions, "
                              "non-linearity).")
        elif name == "factorial_effects":
            rows = [(lab(r["outcome"]), r["factor"], r["level"], _num(r["mean"]),
                     f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]", int(r["n"]),
                     _num(r["effect"])) for _, r in df.iterrows()]
            t = table(["Outcome", "Factor", "Level", "Mean", "95% CI", "n", "Effect"], rows,
                      num_cols=[3, 4, 5, 6],
                      caption="Main effects of each factor level (runs pooled over the other "
                              "factors).")
        else:
            rows = [(lab(r["outcome"]), r["factor"], _num(r["src"]),
                     f"[{_num(r['src_low'])}, {_num(r['src_high'])}]", _num(r["r2"]))
                    for _, r in df.iterrows()]
            t = table(["Outcome", "Factor", "SRC", "95% CI", "R²"], rows, num_cols=[2, 3, 4],
                      caption="Standardised regression coefficients of a linear fit over design "
                              "points.")
        out.append(table_block(t))
    return out


# --------------------------------------------------------------------------- calibration
def _target_what(r: Any) -> str:
    what = registry.label(str(r.get("outcome", r["target"])))
    kind = r.get("kind", "level")
    scen = str(r.get("scenarios", "") or "")
    if kind == "difference":
        return f"{what}: change {scen}"
    if kind == "relative_change":
        return f"{what}: relative change {scen}"
    return f"{what} ({scen})" if scen else what


def _drop_blank(t: Table, col: int) -> Table:
    """``t`` without column ``col`` when every row leaves it empty (an optional text)."""
    if any(str(r[col]).strip() for r in t.rows):
        return t
    keep = [j for j in range(len(t.headers)) if j != col]
    return table([t.headers[j] for j in keep], ([r[j] for j in keep] for r in t.rows),
                 num_cols=[keep.index(j) for j in t.num_cols if j != col], caption=t.caption,
                 row_classes=t.row_classes)


def calibration_facts(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """What a calibration ran (``metadata.json`` of ``govsim calibrate``), for the summary."""
    from sim.analysis.calibration_plots import ROLES

    spec = meta.get("spec") or {}
    targets = meta.get("targets") or []
    roles = [sum(t.get("role", "fit") == r for t in targets) for r in ROLES]
    stages = meta.get("stages") or []
    stage_text = "; ".join(f"{s.get('stage')}: {s.get('points')} points, {s.get('runs')} runs"
                           + (f" ({s['failed']} failed)" if s.get("failed") else "")
                           for s in stages)
    scen = meta.get("scenarios") or {}
    settings = {lab: (spec.get("scenarios") or {}).get(lab, {}).get("set") or {}
                for lab in scen}
    scen_text = "; ".join(f"{lab}: {Path(str(path)).stem}"
                          + (" with " + ", ".join(f"{k} = {show(v)}" for k, v in
                                                  settings[lab].items()) if settings[lab] else "")
                          for lab, path in scen.items())
    status = str(meta.get("status", "?"))
    if meta.get("error"):
        status += f" ({meta['error']})"
    return [
        ("Calibration", f"{meta.get('name', '?')}" + (f" — {spec['description']}"
                                                        if spec.get("description") else "")),
        ("File", str(meta.get("spec_file", "?"))),
        ("Status", status),
        ("Scenarios", scen_text or "?"),
        ("Parameters", f"{len(meta.get('parameters') or [])} free, uniform priors"),
        ("Targets", (f"{len(targets)}: {roles[0]} fitted, {roles[1]} held out, {roles[2]} "
                     "checks")),
        ("Days", (f"{meta.get('days')} per run (the first {meta.get('warmup_days')} are a "
                  "warm-up)")),
        ("Replications", f"{meta.get('replications')} per point"),
        ("Seed", str(meta.get("seed"))),
        ("Stages", stage_text or "none finished"),
        ("Model runs", f"{meta.get('model_runs', sum(int(s.get('runs', 0)) for s in stages)):,}"),
        ("Started / finished", f"{meta.get('started', '?')} / {meta.get('finished', '?')}"),
    ]


def calibration_fit_table(fit: pd.DataFrame, targets: list[dict] | None = None) -> Table:
    """Each target against the ensemble (``fit.parquet``); rows outside 2 errors highlighted."""
    from sim.analysis.calibration_plots import ROLE_TEXT, WITHIN_Z, fit_frame, fmt_target

    df = fit_frame(fit, targets)
    rows, classes = [], []
    for _, r in df.iterrows():
        u = r["unit"]
        obs = f"{fmt_target(r['observed'], u)} ± {fmt_target(r['sd'], u)}"
        if float(r.get("discrepancy") or 0) > 0:
            obs += f" (discrepancy ± {fmt_target(r['discrepancy'], u)})"
        model = (f"{fmt_target(r['model_mean'], u)} [{fmt_target(r['model_q05'], u)}, "
                 f"{fmt_target(r['model_q95'], u)}]")
        z = f"{r['z_mean']:+.2f}" if pd.notna(r["z_mean"]) else "–"
        within = bool(r.get("within", abs(r["z_mean"]) <= WITHIN_Z))
        rows.append((r["target"], ROLE_TEXT.get(r["role"], r["role"]), _target_what(r), obs,
                     model, z, "yes" if within else "NO", r.get("source", "") or ""))
        classes.append("" if within else "star")
    cap = ("Observed ± its sd (one standard deviation); the calibrated ensemble's weighted mean "
           "[5%, 95% quantiles] over members and replications. z = (model mean − observed) / "
           "error with error = √(sd² + discrepancy²); within: |z| ≤ 2 (highlighted rows are not). "
           "Held-out targets were never fitted: they test the ensemble's predictions.")
    t = table(["Target", "Role", "What", "Observed ± sd", "Model mean [90% interval]", "z",
               "Within", "Source"], rows, num_cols=[3, 4, 5], caption=cap, row_classes=classes)
    return _drop_blank(t, 7)


def identifiability_table(ident: pd.DataFrame, parameters: list[dict] | None = None,
                          spec: dict | None = None) -> Table:
    """Prior and posterior of each parameter (``identifiability.parquet``)."""
    params = {p["name"]: p for p in parameters or []}
    described = {k: (v or {}).get("description", "") for k, v in
                 ((spec or {}).get("parameters") or {}).items()}
    rows, classes = [], []
    for _, r in ident.iterrows():
        name = r["parameter"]
        prior = f"{_num(r['low'])} – {_num(r['high'])}" + (" (log)" if r.get("scale") == "log"
                                                             else "")
        active = bool(r.get("active", True))
        post = (f"{_num(r['posterior_median'])} [{_num(r['posterior_q05'])}, "
                f"{_num(r['posterior_q95'])}]" if active
                else f"fixed at {_num(params.get(name, {}).get('nominal', r['posterior_median']))}")
        ratio = f"{100 * float(r['width_ratio']):.0f}%" if active else "–"
        ident_text = "yes" if bool(r.get("identified")) else "no"
        rows.append((name, described.get(name, ""), prior, "yes" if active else "no (inert)",
                     post, ratio, ident_text, r.get("note", "") or ""))
        classes.append("" if bool(r.get("identified")) else "star")
    cap = ("Prior: uniform over the range (on the log scale where marked). Posterior: the "
           "ensemble's weighted median [5%, 95%]. Width: the posterior 90% interval over the "
           "prior's, on the prior's scale; above 75% the targets barely narrow the parameter "
           "and it is not identified (highlighted). Inert parameters moved no fit target in "
           "screening and were fixed at their nominal value.")
    t = table(["Parameter", "What it is", "Prior", "Active", "Posterior median [90%]",
               "Width", "Identified", "Note"], rows, num_cols=[2, 4, 5], caption=cap,
              row_classes=classes)
    return _drop_blank(t, 1)


def waves_table(waves: pd.DataFrame) -> Table:
    """History matching, one row per wave (``waves.parquet``)."""
    rows = [(int(r["wave"]), int(r["points"]), int(r["runs_so_far"]), _num(r["cutoff"]),
             registry.fmt_short(r["nroy_share"], "share"), f"{int(r['nroy_candidates']):,}",
             _num(r["min_implausibility"]), _num(r["median_implausibility"]))
            for _, r in waves.iterrows()]
    cap = ("Each wave runs its points, refits one Gaussian-process emulator per fit target on "
           "every run so far, and keeps the prior points whose implausibility (the largest, over "
           "the fit targets and the emulators of this and every earlier wave, of |emulator mean "
           "− observed| / √(error² + emulator variance)) is at most the cut-off (relaxed, with a "
           "warning, when no point passes). Non-implausible share: of a uniform sample of the "
           "prior.")
    return table(["Wave", "Points", "Runs so far", "Cut-off", "Non-implausible share",
                  "Candidates kept", "Smallest implausibility", "Median implausibility"], rows,
                 num_cols=range(8), caption=cap)


def abc_table(abc: pd.DataFrame) -> Table:
    """ABC-SMC, one row per generation (``abc.parquet``)."""
    def share(v: Any) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{100 * v:.0f}%"

    rows = [(int(r["generation"]), int(r["proposed"]), _num(r["epsilon"]),
             share(r.get("move_acceptance", np.nan)), int(r.get("unique_particles", r["accepted"])),
             _num(r["ess"]), _num(r["median_distance"])) for _, r in abc.iterrows()]
    cap = ("Distance: root mean square over the fit targets of (model − observed) / error. "
           "Generation 1 samples the non-implausible space; each later one lowers the tolerance, "
           "resamples the particles within it and moves each by a simulated Metropolis-Hastings "
           "step, accepted when its distance is within the tolerance. The last population, "
           "duplicates merged and weighted by their count, is the ensemble. ESS: Kish's effective "
           "sample size of those counts.")
    return table(["Generation", "Runs", "Tolerance", "Moves accepted", "Distinct particles",
                  "Effective sample size", "Median distance"], rows, num_cols=range(7), caption=cap)


def emulator_table(em: pd.DataFrame) -> Table:
    """Cross-validated diagnostics of each wave's emulators (``emulators.parquet``); poor ones
    (R² < 0.5 or under 80% of held-out errors within 2 sd) highlighted."""
    rows, classes = [], []
    for _, r in em.iterrows():
        poor = float(r["cv_r2"]) < 0.5 or float(r["cv_within_2sd"]) < 0.8
        r2 = f"{r['cv_r2']:.3f}" if pd.notna(r["cv_r2"]) else "–"
        rows.append((int(r["wave"]), r["target"], int(r["n"]), r2,
                     registry.fmt_short(r["cv_within_2sd"], "share"), _num(r["cv_rmse"]),
                     str(r.get("length_scales", "")), _num(r["noise_sd"]),
                     r.get("note", "") or ""))
        classes.append("star" if poor else "")
    cap = ("Five-fold cross-validation on the runs the emulator was fitted to: R² of its "
           "predictions, the share of held-out runs within 2 predicted sd (about 95% if its "
           "uncertainty is honest), RMSE in the target's unit; fitted length scales on the unit "
           "cube (large: the target hardly depends on that parameter) and noise sd.")
    return table(["Wave", "Target", "Runs", "CV R²", "Within 2 sd", "RMSE", "Length scales",
                  "Noise sd", "Note"], rows, num_cols=[2, 3, 4, 5, 7], caption=cap,
                 row_classes=classes)


def screening_table(scr: pd.DataFrame) -> Table | None:
    """Morris screening as parameter × target effects in target errors (``screening.parquet``),
    None when screening did not run."""
    if scr.empty or "mu_star_per_error" not in scr:
        return None
    wide = scr.pivot_table(index="parameter", columns="target", values="mu_star_per_error",
                           sort=False)
    active = scr.groupby("parameter", sort=False)["active"].first()
    rows = [(p, *[_num(wide.loc[p, t]) for t in wide.columns],
             "active" if bool(active.get(p, True)) else "inert") for p in wide.index]
    cap = ("Morris μ* of each parameter on each fit target over the parameter's whole range, in "
           "units of the target's error; a parameter below the threshold on every target is "
           "inert and fixed at its nominal value.")
    return table(["Parameter", *[f"{t} (μ*/error)" for t in wide.columns], "Screening"], rows,
                 num_cols=range(1, len(wide.columns) + 1), caption=cap)


def calibration_sections(res: Any, figure: Callable[[str, str], dict[str, Any]]
                         ) -> list[dict[str, Any]]:
    """The sections of a calibration's page (id, title, blocks) for a loaded calibration;
    ``figure(kind, caption)`` gives the block of one figure of
    :mod:`sim.analysis.calibration_plots`."""
    meta = res.metadata or {}

    held = [t["name"] for t in meta.get("targets") or [] if t.get("role") == "holdout"]
    fit = [table_block(calibration_fit_table(res.fit, meta.get("targets"))),
           figure("fit", "Each target standardised as (value − observed) / error: the "
                         "observation with ±2 errors (open circle), the ensemble's mean and 90% "
                         "interval (diamond); shaded |z| ≤ 2. "
                  + (f"Held out (predicted, never fitted): {', '.join(held)}."
                     if held else "No target was held out."))]
    params = [table_block(identifiability_table(res.identifiability, meta.get("parameters"),
                                                meta.get("spec"))),
              figure("posterior", "The ensemble's weighted histogram of each parameter over "
                                  "its prior range (dashed: the flat prior), its median and 90% "
                                  "interval; inert parameters were fixed at their nominal value."),
              figure("pairs", "The ensemble's members for each pair of active parameters "
                              "(marker area ∝ weight): a ridge means the targets fix a "
                              "combination of them rather than each one.")]
    history = [table_block(waves_table(res.waves)),
               figure("implausibility", "Implausibility of a uniform sample of the prior in "
                                        "each wave against each active parameter (log scale; "
                                        "lines: the smallest per bin; dashed: the cut-off), and "
                                        "the share of the prior each wave keeps."),
               h3("Emulator diagnostics"), table_block(emulator_table(res.emulators))]
    scr = screening_table(res.screening)
    return [
        {"id": "fit", "title": "Fit to the targets", "blocks": fit},
        {"id": "parameters", "title": "Parameters: prior and posterior", "blocks": params},
        {"id": "history", "title": "History matching", "blocks": history},
        {"id": "abc", "title": "ABC-SMC", "blocks": [table_block(abc_table(res.abc))]},
        {"id": "screening", "title": "Screening",
         "blocks": [table_block(scr)] if scr is not None
         else [para("Screening did not run: every parameter was calibrated.", "note")]},
    ]
