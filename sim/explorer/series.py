"""The numbers the explorer shows beside the map: daily series, headline outcomes, and the
difference B - A in compare mode.

Labels, units and number formats come from the outcome registry (:mod:`sim.outcomes`); the
daily columns are Mesa DataCollector columns of :mod:`sim.metrics`, plus two that the explorer
records itself (:class:`~sim.explorer.state.Run`): ``ttr7_h``, the median hours from report to
true fix of the cases resolved in the last 7 days, and ``expected_safe``, the share of all
residents who would answer "safe" (what the survey estimates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim import outcomes
from sim.codes import CHANNELS
from sim.explorer.state import ExplorerModel, Run

#: DataCollector columns the charts use.
SERIES_KEYS = ("closure_rate", "resolution_rate", "backlog", "latent_open",
               *(f"reports_{c}" for c in CHANNELS),
               "survey_share_safe", "survey_ci_low", "survey_ci_high")


def series(model: ExplorerModel) -> pd.DataFrame:
    """Daily values of every run, one row per (run, day): Mesa DataCollector columns plus the
    7-day median time to resolution (hours) and the expected share feeling safe."""
    frames = []
    for run in model.runs:
        mv = run.model.datacollector.model_vars
        days = len(mv.get("closure_rate", []))
        if days == 0:
            continue
        df = pd.DataFrame({k: np.asarray(mv[k], dtype=float) for k in SERIES_KEYS if k in mv})
        df.insert(0, "day", np.arange(1, days + 1))
        df.insert(0, "run", run.label)
        df["ttr7_h"] = _padded(run.ttr7_h, days)
        df["expected_safe"] = _padded(run.expected_safe, days)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run", "day", *SERIES_KEYS, "ttr7_h", "expected_safe"])
    return pd.concat(frames, ignore_index=True)


def _padded(values: list[float], days: int) -> np.ndarray:
    return np.asarray(values[:days] + [np.nan] * (days - len(values)))


# --------------------------------------------------------------------------- headlines
@dataclass(frozen=True)
class Headline:
    """One row of the headline table.

    Attributes:
        column: the daily column (of :func:`series`) whose latest value is shown.
        outcome: the registry outcome (:data:`sim.outcomes.OUTCOMES`) that gives the label and
            unit: the run outcome this daily value is the running counterpart of.
        qualifier: what differs from the run outcome's definition (empty: nothing).
    """

    column: str
    outcome: str
    qualifier: str = ""

    @property
    def label(self) -> str:
        text = outcomes.label(self.outcome)
        if self.qualifier:
            text += f", {self.qualifier}"
        u = outcomes.unit(self.outcome)
        if u and not outcomes.is_share(u):  # shares read as % in the value itself
            text += f" ({u})"
        return text


HEADLINES: tuple[Headline, ...] = (
    Headline("closure_rate", "closure_rate", "last 30 days' reports"),
    Headline("resolution_rate", "true_resolution_rate", "last 30 days' reports"),
    Headline("backlog", "backlog"),
    Headline("ttr7_h", "time_to_resolution_median_h", "last 7 days"),
    Headline("latent_open", "latent_open_end"),
    Headline("survey_share_safe", "survey_share_safe", "last wave"),
)


def headline(run: Run) -> dict[str, float]:
    """The run's headline values today, by column (the last survey wave for the survey)."""
    mv = run.model.datacollector.model_vars
    out: dict[str, float] = {}
    for h in HEADLINES:
        if h.column == "ttr7_h":
            out[h.column] = run.ttr7_h[-1] if run.ttr7_h else float("nan")
        elif h.column == "survey_share_safe":
            # the daily column is NaN between waves; show the latest wave instead
            s = run.model.safety.surveys
            out[h.column] = s[-1].share_safe if s else float("nan")
        else:
            v = mv.get(h.column, [])
            out[h.column] = float(v[-1]) if len(v) else float("nan")
    return out


def headline_table(model: ExplorerModel) -> pd.DataFrame:
    """One row per headline outcome: each run's value and, in compare mode, B - A."""
    rows = []
    heads = [headline(r) for r in model.runs]
    for h in HEADLINES:
        row = {"outcome": h.label}
        for r, values in zip(model.runs, heads, strict=True):
            row[r.label] = outcomes.fmt_outcome(h.outcome, values[h.column])
        if model.compare:
            row["B − A"] = outcomes.fmt_outcome(
                h.outcome, heads[1][h.column] - heads[0][h.column], signed=True)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- differences
#: The outcomes of the difference panel: (daily column, short panel title). Shares are shown
#: in percentage points (pp); other units as the registry gives them.
DIFFERENCES: tuple[tuple[str, str], ...] = (
    ("closure_rate", "Closure rate"),
    ("resolution_rate", "True resolution rate"),
    ("backlog", "Backlog"),
    ("ttr7_h", "Median time to resolution"),
)
_OUTCOME_OF = {h.column: h.outcome for h in HEADLINES}


def difference_series(model: ExplorerModel, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """B - A per day for the headline outcomes, one row per (day, outcome); shares in
    percentage points."""
    df = series(model) if df is None else df
    if not model.compare or df.empty:
        return pd.DataFrame(columns=["day", "outcome", "difference"])
    a = df[df["run"] == model.runs[0].label].set_index("day")
    b = df[df["run"] == model.runs[1].label].set_index("day")
    out = []
    for column, title in DIFFERENCES:
        name = _OUTCOME_OF[column]
        share = outcomes.is_share(name)
        d = (b[column] - a[column]) * (100.0 if share else 1.0)
        label = f"{title} ({'pp' if share else outcomes.unit(name)})"
        out.append(pd.DataFrame({"day": d.index.to_numpy(), "outcome": label,
                                 "difference": d.to_numpy()}))
    return pd.concat(out, ignore_index=True)
