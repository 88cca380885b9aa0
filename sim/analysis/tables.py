"""Readable tables for the terminal (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from sim.outcomes import SUMMARY_SECTIONS, fmt, fmt_signed
from sim.outcomes import get as outcome
from sim.scenario import CHANNELS


SECTIONS = SUMMARY_SECTIONS


def summary_table(summary: dict[str, Any], title: str = "Summary") -> Table:
    """The run summary as a sectioned two-column table, with the survey's interval and the
    reports by channel (first reports / all reports)."""
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("Outcome")
    t.add_column("Value", justify="right")
    t.add_column("Unit", style="dim")
    for section, keys in SECTIONS:
        t.add_section()
        t.add_row(f"[bold]{section}[/bold]", "", "")
        for k in keys:
            if k not in summary:
                continue
            o = outcome(k)
            label, unit = o.label, o.unit
            val = fmt(summary[k], unit)
            if k == "survey_share_safe":
                val += f"  [{fmt(summary['survey_ci_low'], 'share')}, {fmt(summary['survey_ci_high'], 'share')}]"
                unit = f"95% CI, n={int(summary.get('survey_n', 0)):,}"
            t.add_row(label, val, unit if unit not in ("share", "0-1") else "")
        if section == "Incidents":
            t.add_row("[italic]Reports by channel[/italic]", "first / all", "")
            for ch in CHANNELS:
                first, allr = summary.get(f"first_reports_{ch}", 0), summary.get(f"reports_{ch}", 0)
                t.add_row(f"  {ch}", f"{fmt(first)} / {fmt(allr)}", "reports")
    return t


def comparison_table(df, title: str = "Scenario comparison (95% intervals; paired by replication)") -> Table:
    """Means per scenario and paired differences to the baseline, marking differences whose
    interval excludes zero (distinguishable from noise)."""
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("Outcome")
    t.add_column("Scenario")
    t.add_column("Mean [95% CI]", justify="right")
    t.add_column("Difference to baseline [95% CI]", justify="right")
    t.add_column("p", justify="right")
    for outcome, sub in df.groupby("outcome", sort=False):
        t.add_section()
        for i, (_, r) in enumerate(sub.iterrows()):
            unit = r.get("unit", "")
            mean = f"{fmt(r['mean'], unit)} [{fmt(r['ci_low'], unit)}, {fmt(r['ci_high'], unit)}]"
            if r["scenario"] == r["baseline"]:
                diff, p = "(baseline)", ""
            else:
                diff = f"{fmt_signed(r['diff'], unit)} [{fmt_signed(r['diff_ci_low'], unit)}, {fmt_signed(r['diff_ci_high'], unit)}]"
                diff = f"[bold]{diff} *[/bold]" if r["distinguishable"] else f"{diff}  "
                p = f"{r['p_value']:.3g}" if r["p_value"] == r["p_value"] else "–"
            label = f"{r['label']} ({unit})" if unit and unit not in ("share", "0-1") and i == 0 else (r["label"] if i == 0 else "")
            t.add_row(label, str(r["scenario"]), mean, diff, p)
    t.caption = "* the paired 95% interval excludes zero (distinguishable from noise). Paired t-test over replications."
    return t
