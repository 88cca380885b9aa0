"""The outcome registry: every outcome the model reports, declared once.

Each :class:`Outcome` carries its name (the column in ``runs.parquet`` or
``timeseries.parquet``), a label and unit for people, a description, which direction is better,
and the table it belongs to (``run``: one value per run; ``daily``: one per day). Every layer
reads this module: the run summary table, comparisons, experiment specs (which outcome names
are valid), sensitivity analysis, plots, the HTML report and the explorer. Adding an outcome is
one entry here plus the line in :mod:`sim.metrics` that computes it.

Formatting lives here too (:func:`fmt`, :func:`fmt_signed`, :func:`axis_label`) so that a share
reads as a percentage everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from sim.codes import CATEGORIES, CHANNELS, HANDLER_POOLS

Better = Literal["higher", "lower", None]
Table = Literal["run", "daily", "both"]

#: Units whose values are shares in [0, 1], shown as percentages.
SHARE_UNITS = frozenset({"share", "share of hours"})


@dataclass(frozen=True)
class Outcome:
    """One reported quantity.

    Attributes:
        name: column name in the result tables.
        label: short label for tables and axes.
        unit: ``share`` (shown as %), ``share of hours``, ``0-1`` (a scale), ``hours``,
            ``incidents``, ... or empty.
        description: one sentence on how it is computed.
        better: ``"higher"``, ``"lower"`` or None (neither: a count of what happened).
        table: ``run`` (runs.parquet), ``daily`` (timeseries.parquet) or ``both``.
    """

    name: str
    label: str
    unit: str = ""
    description: str = ""
    better: Better = None
    table: Table = "run"

    @property
    def axis_label(self) -> str:
        u = _UNIT_TEXT.get(self.unit, self.unit)
        return f"{self.label} ({u})" if u else self.label


_UNIT_TEXT = {"share": "%", "share of hours": "% of hours", "0-1": "0–1 scale"}

OUTCOMES: dict[str, Outcome] = {}


def _o(name: str, label: str, unit: str = "", description: str = "", better: Better = None,
       table: Table = "run") -> None:
    if name in OUTCOMES:
        raise ValueError(f"outcome {name!r} declared twice")
    OUTCOMES[name] = Outcome(name, label, unit, description or label, better, table)


# --------------------------------------------------------------------------- run outcomes
_o("incidents_occurred", "Incidents occurred", "incidents", "True incidents (what happened)", "lower")
_o("incidents_discovered", "Incidents discovered", "incidents")
_o("incidents_recorded", "Incidents recorded", "incidents", "Reported to the system")
_o("duplicate_reports", "Duplicate reports", "reports", table="both")
_o("closure_rate", "Official closure rate", "share",
   "Cases reported in a 30-day period and officially closed (incl. on paper) by its end, over all"
   " cases reported in it (run: pooled over the complete periods after the warm-up; daily: the"
   " last 30 days' reports as of the day's end)", "higher", table="both")
_o("true_resolution_rate", "True resolution rate", "share",
   "Cases reported in a 30-day period and truly resolved by its end, over all cases reported in"
   " it (pooled over the complete periods after the warm-up)", "higher")
_o("on_time_rate", "On-time closure rate", "share",
   "Cases reported in a 30-day period and officially closed within their category's deadline,"
   " over all cases reported in it (pooled over the periods after the warm-up whose deadlines"
   " have all passed)", "higher")
_o("closure_periods", "Months in the closure rate", "periods",
   "Complete 30-day periods after the warm-up pooled in the closure and true resolution rates")
_o("on_time_periods", "Months in the on-time rate", "periods",
   "30-day periods after the warm-up whose deadlines have all passed, pooled in the on-time rate")
_o("closure_rate_cumulative", "Official closure rate, end of run", "share",
   "Recorded cases closed (incl. on paper) at the end of the run (run: cases occurring after"
   " the warm-up; daily: all cases so far), whatever their report date", "higher", table="both")
_o("true_resolution_rate_cumulative", "True resolution rate, end of run", "share",
   "Recorded cases truly resolved at the end of the run (run: cases occurring after the"
   " warm-up; daily: all cases so far)", "higher", table="both")
_o("resolved_share_of_occurred", "Resolved share of occurred", "share", better="higher")
_o("public_safety_clearance", "Public-safety clearance", "share",
   "Public-safety incidents truly resolved / occurred", "higher")
_o("time_to_discovery_median_h", "Time to discovery, median", "hours", better="lower")
_o("time_to_discovery_p90_h", "Time to discovery, P90", "hours", better="lower")
_o("time_to_close_median_h", "Time to closure, median", "hours", "Report to official closure", "lower")
_o("time_to_close_p90_h", "Time to closure, P90", "hours", better="lower")
_o("time_to_resolution_median_h", "Time to resolution, median", "hours", "Report to true fix", "lower")
_o("time_to_resolution_p90_h", "Time to resolution, P90", "hours", better="lower")
_o("dispatch_delay_median_h", "Dispatch delay, median", "hours", "Report to dispatch", "lower")
_o("backlog_end", "Backlog at end", "cases", "Known cases not yet closed", "lower")
_o("latent_open_end", "Undiscovered latent problems at end", "problems", better="lower")
_o("paper_closed_open_end", "Closed on paper, unresolved at end", "problems", better="lower")
_o("failed", "Abandoned (failed) cases", "cases", better="lower", table="both")
_o("lapsed", "Never reported (lapsed)", "incidents", better="lower", table="both")
_o("reopened", "Reopenings", "cases", table="both")
_o("escalations", "Tier escalations", "cases")
_o("became_public_safety", "Disputes turned public-safety", "incidents", better="lower",
   table="both")
_o("harm", "Harm from unresolved problems", "people harmed", better="lower", table="both")
_o("mediation_success_rate", "Mediation success", "share", better="higher")
_o("perceived_safety_mean", "Perceived safety, mean", "0-1", better="higher")
_o("survey_share_safe", "Surveyed share feeling safe", "share", better="higher", table="both")
_o("survey_ci_low", "Survey 95% CI, low", "share", table="both")
_o("survey_ci_high", "Survey 95% CI, high", "share", table="both")
_o("survey_waves", "Survey waves", "waves")
_o("survey_n", "Survey respondents", "people", table="both")
_o("trust_mean", "Trust in local government, mean", "0-1", better="higher")
_o("worker_utilisation", "Grid worker workload", "share of hours",
   "(paperwork + case work + patrol needed for the revisit targets) / working hours; >1 overloaded",
   table="both")
_o("worker_paperwork_hours", "Paperwork per worker", "hours/day", better="lower", table="both")
_o("worker_patrol_hours", "Patrol per worker", "hours/day", table="both")
_o("patrol_coverage", "Patrol coverage", "share",
   "Population in cells visited within the revisit target", "higher", table="both")
_o("rider_reports_per_rider_month", "Rider reports per rider", "reports/month")
_o("days", "Days simulated", "days")
_o("warmup_days", "Warm-up days", "days")
_o("population", "Population", "people")
_o("grids", "Grids", "grids")
_o("people_per_grid", "People per grid", "people")
for _c in CATEGORIES:
    _o(f"occurred_{_c}", f"Incidents occurred: {_c}", "incidents", table="both")
for _ch in CHANNELS:
    _o(f"reports_{_ch}", f"Reports via {_ch}", "reports", table="both")
    _o(f"first_reports_{_ch}", f"Discoveries via {_ch}", "incidents", table="both")
for _h in HANDLER_POOLS:
    _o(f"utilisation_{_h}", f"Utilisation of {_h} handlers", "share", table="both")

# --------------------------------------------------------------------------- daily outcomes
_o("occurred", "Incidents occurred", "incidents/day", table="daily")
_o("discovered", "Incidents discovered", "incidents/day", table="daily")
_o("recorded", "Incidents recorded", "incidents/day", table="daily")
_o("closed", "Cases closed", "cases/day", table="daily")
_o("resolved", "Cases truly resolved", "cases/day", table="daily")
_o("backlog", "Backlog", "cases", table="daily")
_o("perceived_safety", "Perceived safety, mean", "0-1", better="higher", table="daily")
_o("trust", "Trust, mean", "0-1", better="higher", table="daily")
_o("mean_wait_hours", "Mean queue wait", "hours", better="lower", table="daily")
_o("on_spot_fixes", "Fixed on the spot", "cases/day", table="daily")
_o("paper_closed", "Cases closed on paper", "cases/day", better="lower", table="daily")
_o("escalated", "Cases escalated a tier", "cases/day", table="daily")
_o("mediation_attempts", "Mediation attempts", "cases/day", table="daily")
_o("mediation_success", "Mediations succeeded", "cases/day", table="daily")
_o("latent_open", "Undiscovered latent problems", "problems", better="lower", table="daily")
_o("paper_closed_open", "Closed on paper, unresolved", "problems", better="lower", table="daily")
_o("open_total", "Open incidents", "incidents", table="daily")
_o("resolution_rate", "True resolution rate (last 30 days)", "share",
   "Cases reported in the last 30 days and truly resolved by the day's end, over all of them",
   "higher", table="daily")
_o("reporting_propensity", "Reporting propensity, mean", "x baseline", table="daily")
_o("worker_case_hours", "Case work per worker", "hours/day", table="daily")
_o("police_visits", "Police patrol visits", "visits/day", table="daily")
_o("guardian_visits", "Guardian visits", "visits/day", table="daily")
_o("rider_reports", "Rider reports", "reports/day", table="daily")
_o("volunteer_reports", "Volunteer reports", "reports/day", table="daily")
_o("feedback_fixed", "Reporters told: fixed", "cases/day", table="daily")
_o("feedback_not_fixed", "Reporters told: not fixed", "cases/day", table="daily")
_o("feedback_silence", "Reporters not told", "cases/day", table="daily")

# --------------------------------------------------------------------------- default lists
#: The run summary table's sections (``govsim run``, the HTML report).
SUMMARY_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Incidents", ("incidents_occurred", "incidents_discovered", "incidents_recorded",
                   "duplicate_reports", "lapsed")),
    ("Handling", ("closure_rate", "on_time_rate", "true_resolution_rate",
                  "closure_rate_cumulative", "true_resolution_rate_cumulative",
                  "time_to_discovery_median_h", "time_to_discovery_p90_h",
                  "dispatch_delay_median_h", "time_to_close_median_h", "time_to_close_p90_h",
                  "time_to_resolution_median_h", "time_to_resolution_p90_h",
                  "backlog_end", "latent_open_end", "escalations", "reopened", "failed",
                  "mediation_success_rate", "became_public_safety", "harm")),
    ("Residents", ("perceived_safety_mean", "survey_share_safe", "trust_mean")),
    ("Staff", ("worker_utilisation", "worker_paperwork_hours", "patrol_coverage",
               *(f"utilisation_{h}" for h in HANDLER_POOLS), "rider_reports_per_rider_month")),
)

#: Outcomes compared by ``govsim compare`` and summarised by default.
COMPARE: tuple[str, ...] = (
    "closure_rate", "on_time_rate", "true_resolution_rate", "time_to_resolution_median_h",
    "time_to_resolution_p90_h", "time_to_discovery_median_h", "incidents_occurred",
    "incidents_recorded", "harm", "perceived_safety_mean", "survey_share_safe", "trust_mean",
    "worker_utilisation",
)

#: Outcomes an experiment keeps when its spec names none.
EXPERIMENT: tuple[str, ...] = (
    "closure_rate", "true_resolution_rate", "on_time_rate", "time_to_discovery_median_h",
    "time_to_resolution_median_h", "time_to_resolution_p90_h", "incidents_occurred",
    "incidents_recorded", "harm", "perceived_safety_mean", "survey_share_safe", "trust_mean",
    "worker_utilisation",
)

#: Outcomes a sensitivity analysis covers when the experiment's metadata names none.
SENSITIVITY: tuple[str, ...] = (
    "closure_rate", "true_resolution_rate", "time_to_resolution_median_h", "harm",
    "survey_share_safe", "perceived_safety_mean", "worker_utilisation",
)


# --------------------------------------------------------------------------- look-ups
def get(name: str) -> Outcome:
    """The outcome called ``name``; an unregistered column gets a plain label and no unit."""
    o = OUTCOMES.get(name)
    return o if o is not None else Outcome(name, name.replace("_", " "))


def label(name: str) -> str:
    return get(name).label


def unit(name: str) -> str:
    return get(name).unit


def unit_text(unit: str) -> str:
    """How a unit reads next to a number or on an axis (shares as %, 0-1 scales named)."""
    return _UNIT_TEXT.get(unit, unit)


def axis_label(name: str) -> str:
    """``"Label (unit)"`` for an axis: shares read as percentages."""
    return get(name).axis_label


def run_outcomes() -> list[str]:
    """Names valid as experiment outcomes (columns of ``runs.parquet``)."""
    return [n for n, o in OUTCOMES.items() if o.table in ("run", "both")]


def is_share(name_or_unit: str) -> bool:
    return name_or_unit in SHARE_UNITS or get(name_or_unit).unit in SHARE_UNITS


# --------------------------------------------------------------------------- formatting
def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def fmt(value: Any, unit: str = "") -> str:
    """Format a value for people: shares as percentages, 0-1 scales with three decimals, other
    fractions with one or two, counts with thousands separators; missing values as a dash."""
    if _missing(value):
        return "–"
    if unit in SHARE_UNITS:
        return f"{100 * value:.1f}%"
    if unit == "0-1":
        return f"{value:.3f}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{int(value):,}"


def fmt_signed(value: Any, unit: str = "") -> str:
    """:func:`fmt` with an explicit sign on non-zero values (differences)."""
    s = fmt(value, unit)
    if s != "–" and not s.startswith("-") and value != 0:
        s = "+" + s
    return s


def fmt_outcome(name: str, value: Any, *, signed: bool = False) -> str:
    """Format ``value`` in the unit of outcome ``name``."""
    u = unit(name)
    return fmt_signed(value, u) if signed else fmt(value, u)


def fmt_short(value: Any, unit: str = "") -> str:
    """A compact form for figure annotations: shares as %, large values without decimals,
    others to three significant digits."""
    if _missing(value) or not math.isfinite(value):
        return "–"
    if unit in SHARE_UNITS:
        return f"{100 * value:.1f}%"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
