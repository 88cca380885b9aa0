"""Readable tables for the terminal (rich)."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from .metrics import HANDLER_POOLS, METRIC_INFO
from .scenario import CHANNELS


def fmt(value: Any, unit: str = "") -> str:
    """Format a metric for people: shares as percentages, times in hours, counts with commas."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit in ("share", "share of hours"):
        return f"{100 * value:.1f}%"
    if unit == "0-1":
        return f"{value:.3f}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{int(value):,}"


SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Incidents", ("incidents_occurred", "incidents_discovered", "incidents_recorded",
                   "duplicate_reports", "lapsed")),
    ("Handling", ("closure_rate", "true_resolution_rate", "on_time_rate",
                  "time_to_discovery_median_h", "time_to_discovery_p90_h",
                  "dispatch_delay_median_h", "time_to_close_median_h", "time_to_close_p90_h",
                  "time_to_resolution_median_h", "time_to_resolution_p90_h",
                  "backlog_end", "latent_open_end", "escalations", "reopened", "failed",
                  "mediation_success_rate", "became_public_safety", "harm")),
    ("Residents", ("perceived_safety_mean", "survey_share_safe", "trust_mean")),
    ("Staff", ("worker_utilisation", "worker_paperwork_hours", "patrol_coverage",
               *(f"utilisation_{h}" for h in HANDLER_POOLS), "rider_reports_per_rider_month")),
)


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
            info = METRIC_INFO.get(k)
            label = info.label if info else k
            unit = info.unit if info else ""
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
