"""Readable tables for the terminal (rich): the summary of a run and a scenario comparison.

Labels, units and number formats come from the outcome registry (:mod:`sim.outcomes`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.table import Table

from sim import outcomes as registry
from sim.codes import CHANNELS

__all__ = ["comparison_table", "summary_table", "unit_column"]


def unit_column(unit: str) -> str:
    """A unit as a table shows it beside a value formatted by :func:`sim.outcomes.fmt`: nothing
    where the number says it already (a share reads as %, a 0-1 scale by its three decimals)."""
    return "" if unit in ("share", "0-1") else unit


def summary_table(summary: dict[str, Any], title: str = "Summary") -> Table:
    """The run summary as a sectioned two-column table, with the survey's interval and the
    reports by channel (first reports / all reports)."""
    fmt = registry.fmt
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("Outcome")
    t.add_column("Value", justify="right")
    t.add_column("Unit", style="dim")
    for section, keys in registry.SUMMARY_SECTIONS:
        t.add_section()
        t.add_row(f"[bold]{section}[/bold]", "", "")
        for k in keys:
            if k not in summary:
                continue
            unit = registry.unit(k)
            val = fmt(summary[k], unit)
            if k == "survey_share_safe":
                val += (f"  [{fmt(summary['survey_ci_low'], 'share')}, "
                        f"{fmt(summary['survey_ci_high'], 'share')}]")
                unit = f"95% CI, n={int(summary.get('survey_n', 0)):,}"
            t.add_row(registry.label(k), val, unit_column(unit))
        if section == "Incidents":
            t.add_row("[italic]Reports by channel[/italic]", "first / all", "")
            for ch in CHANNELS:
                first = summary.get(f"first_reports_{ch}", 0)
                allr = summary.get(f"reports_{ch}", 0)
                t.add_row(f"  {ch}", f"{fmt(first)} / {fmt(allr)}", "reports")
    return t


def comparison_table(df: pd.DataFrame,
                     title: str = "Scenario comparison (95% intervals; paired by replication)"
                     ) -> Table:
    """Means per scenario and paired differences to the baseline
    (:func:`sim.analysis.compare.compare`), marking differences whose interval excludes zero
    (distinguishable from noise)."""
    fmt, fmt_signed = registry.fmt, registry.fmt_signed
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("Outcome")
    t.add_column("Scenario")
    t.add_column("Mean [95% CI]", justify="right")
    t.add_column("Difference to baseline [95% CI]", justify="right")
    t.add_column("p", justify="right")
    for _, sub in df.groupby("outcome", sort=False):
        t.add_section()
        for i, (_, r) in enumerate(sub.iterrows()):
            unit = r.get("unit", "")
            mean = f"{fmt(r['mean'], unit)} [{fmt(r['ci_low'], unit)}, {fmt(r['ci_high'], unit)}]"
            if r["scenario"] == r["baseline"]:
                diff, p = "(baseline)", ""
            else:
                diff = (f"{fmt_signed(r['diff'], unit)} [{fmt_signed(r['diff_ci_low'], unit)}, "
                        f"{fmt_signed(r['diff_ci_high'], unit)}]")
                diff = f"[bold]{diff} *[/bold]" if r["distinguishable"] else f"{diff}  "
                p = f"{r['p_value']:.3g}" if r["p_value"] == r["p_value"] else "–"
            label = ""
            if i == 0:
                u = unit_column(unit)
                label = f"{r['label']} ({u})" if u else r["label"]
            t.add_row(label, str(r["scenario"]), mean, diff, p)
    t.caption = ("* the paired 95% interval excludes zero (distinguishable from noise). "
                 "Paired t-test over replications.")
    return t
