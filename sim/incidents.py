"""Incidents: records with a life cycle, stored column-wise, and how they arise.

An incident is a record, not an agent. The :class:`IncidentLog` keeps one row per incident in
growable numpy columns (a structure of arrays), so a city-year of about a million incidents
costs ~150 bytes each and every daily process is a vectorised operation over the open rows.

Life cycle (time stamps in model days, NaN where a step did not happen)::

    occurred -> discovered -> reported -> triaged -> dispatched -> started -> ended
             -> closed (official) and/or resolved (true) -> feedback
    failed attempt -> escalated a tier up (or abandoned after max attempts: failed)
    paper-closed but unresolved -> reopened -> triaged again
    never found within the report window (non-latent) -> lapsed (dark figure)

Arrivals (:func:`background_arrivals`) follow DESIGN.md section 4: per cell and day, a Poisson
count with rate population x base rate (x the category's rural factor in rural cells) x
background risk x deterrence x disorder feedback,
plus near-repeat offspring of a Hawkes process in its cluster (branching) form: each incident
has Poisson(eta) direct offspring at exponential delays in its own or a neighbouring cell, so
the long-run ratio of triggered to background incidents is eta / (1 - eta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# CAT, CH and OPEN_STATES are re-exported for callers that work with incidents.
from sim.codes import (  # noqa: F401
    CAT,
    CATEGORIES,
    CH,
    CHANNELS,
    FEEDBACK_NAMES,
    HANDLER_NAMES,
    HD,
    OPEN_STATES,
    ORIGIN_NAMES,
    STATE_NAMES,
    Origin,
    State,
)

# State and origin codes by their short names (the enums' members), for the vectorised code.
UNDISCOVERED, KNOWN, PAPER_CLOSED, RESOLVED, FAILED, LAPSED = State
BACKGROUND, NEAR_REPEAT, ESCALATION = Origin
N_CAT = len(CATEGORIES)
N_CH = len(CHANNELS)

_TIME_FIELDS = (
    "t_occurred", "t_discovered", "t_reported", "t_triaged", "t_dispatched", "t_started",
    "t_ended", "t_closed", "t_resolved", "t_failed", "t_reopened", "t_feedback", "t_lapsed",
)
# (name, dtype, fill)
_FIELDS: tuple[tuple[str, str, object], ...] = (
    ("category", "i1", -1),
    ("cell", "i4", -1),
    ("origin", "i1", BACKGROUND),
    ("parent", "i8", -1),
    ("severity", "f4", np.nan),
    ("victim", "i4", -1),
    ("reporter", "i4", -1),
    ("state", "i1", UNDISCOVERED),
    ("first_channel", "i1", -1),
    ("route", "i1", -1),
    ("handler", "i1", -1),
    ("pool", "i4", -1),
    ("attempts", "i1", 0),
    ("escalations", "i1", 0),
    ("reopens", "i1", 0),
    ("handoffs", "i1", 0),
    ("harm", "i2", 0),
    ("became_public_safety", "?", False),
    ("feedback_kind", "i1", -1),
    *((t, "f8", np.nan) for t in _TIME_FIELDS),
)


class IncidentLog:
    """Column store of all incidents of a run. Row ``i`` is incident id ``i``."""

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self._cap = max(16, int(capacity))
        self.cols: dict[str, np.ndarray] = {}
        for name, dtype, fill in _FIELDS:
            self.cols[name] = np.full(self._cap, fill, dtype=dtype)
        self.reports = np.zeros((self._cap, N_CH), dtype=np.int16)
        for name in self.cols:
            setattr(self, name, self.cols[name])
        # Open incidents (undiscovered, known, paper-closed), pruned lazily: an incident never
        # returns from a terminal state (resolved, failed, lapsed), so daily processes touch
        # only the open ones instead of the whole, growing log.
        self._open = np.zeros(0, dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = self._cap
        while cap < need:
            cap *= 2
        for name, dtype, fill in _FIELDS:
            new = np.full(cap, fill, dtype=dtype)
            new[: self.n] = self.cols[name][: self.n]
            self.cols[name] = new
            setattr(self, name, new)
        rep = np.zeros((cap, N_CH), dtype=np.int16)
        rep[: self.n] = self.reports[: self.n]
        self.reports = rep
        self._cap = cap

    def add(
        self,
        category: np.ndarray,
        cell: np.ndarray,
        t_occurred: np.ndarray,
        severity: np.ndarray,
        origin: np.ndarray | int = BACKGROUND,
        parent: np.ndarray | int = -1,
        victim: np.ndarray | int = -1,
    ) -> np.ndarray:
        """Append incidents; returns their ids."""
        k = len(category)
        if self.n + k > self._cap:
            self._grow(self.n + k)
        ids = np.arange(self.n, self.n + k, dtype=np.int64)
        sl = slice(self.n, self.n + k)
        self.category[sl] = category
        self.cell[sl] = cell
        self.t_occurred[sl] = t_occurred
        self.severity[sl] = severity
        self.origin[sl] = origin
        self.parent[sl] = parent
        self.victim[sl] = victim
        self.n += k
        self._open = np.concatenate([self._open, ids])
        return ids

    # ------------------------------------------------------------------ views
    def view(self, name: str) -> np.ndarray:
        return self.cols[name][: self.n]

    def open_ids(self) -> np.ndarray:
        """Ids of open incidents (undiscovered, known or closed on paper), ascending."""
        self._open = self._open[self.state[self._open] <= PAPER_CLOSED]
        return self._open

    def state_counts(self) -> dict[str, int]:
        counts = np.bincount(self.state[: self.n], minlength=len(STATE_NAMES))
        return {STATE_NAMES[i]: int(c) for i, c in enumerate(counts)}

    def to_frame(self, grid_of_cell: np.ndarray | None = None) -> pd.DataFrame:
        """The event log as a tidy DataFrame, one row per incident, with readable labels."""
        n = self.n
        data: dict[str, object] = {"incident_id": np.arange(n, dtype=np.int64)}
        data["category"] = pd.Categorical.from_codes(self.category[:n], CATEGORIES)
        data["cell"] = self.cell[:n]
        if grid_of_cell is not None:
            data["grid"] = grid_of_cell[self.cell[:n]]
        data["origin"] = pd.Categorical.from_codes(self.origin[:n], ORIGIN_NAMES)
        data["parent"] = self.parent[:n]
        data["severity"] = self.severity[:n]
        data["victim"] = self.victim[:n]
        data["reporter"] = self.reporter[:n]
        data["state"] = pd.Categorical.from_codes(self.state[:n], STATE_NAMES)
        data["first_channel"] = pd.Categorical.from_codes(self.first_channel[:n], CHANNELS)
        data["route"] = pd.Categorical.from_codes(self.route[:n], HANDLER_NAMES)
        data["handler"] = pd.Categorical.from_codes(self.handler[:n], HANDLER_NAMES)
        for name in ("attempts", "escalations", "reopens", "handoffs", "harm", "became_public_safety"):
            data[name] = self.cols[name][:n]
        data["feedback"] = pd.Categorical.from_codes(self.feedback_kind[:n], FEEDBACK_NAMES)
        data["n_reports"] = self.reports[:n].sum(axis=1).astype(np.int32)
        for j, ch in enumerate(CHANNELS):
            data[f"reports_{ch}"] = self.reports[:n, j]
        for t in _TIME_FIELDS:
            data[t] = self.cols[t][:n]
        return pd.DataFrame(data)


# --------------------------------------------------------------------------- arrivals
@dataclass
class CategoryArrays:
    """Per-category parameters as arrays indexed by category code (vectorised lookups)."""

    base_rate: np.ndarray
    rural_rate_factor: np.ndarray
    latent: np.ndarray
    visibility: np.ndarray
    has_victim: np.ndarray
    victim_report_prob: np.ndarray
    public_report_hazard: np.ndarray
    report_window_days: np.ndarray
    patrol_detect_prob: np.ndarray
    route: np.ndarray
    joint: np.ndarray
    service_mean_days: np.ndarray
    service_cv: np.ndarray
    exponential: np.ndarray
    on_spot_fix_prob: np.ndarray
    on_spot_hours: np.ndarray
    success_prob: np.ndarray
    paper_close_prob: np.ndarray
    deadline_days: np.ndarray
    severity_sigma: np.ndarray
    harm_hazard: np.ndarray
    escalation_hazard: np.ndarray
    deterrable: np.ndarray
    disorder_sensitivity: np.ndarray
    near_repeat_branching: np.ndarray
    near_repeat_days: np.ndarray
    near_repeat_same_cell: np.ndarray
    safety_impact: np.ndarray

    @classmethod
    def from_scenario(cls, incidents) -> CategoryArrays:
        cats = [c for _, c in incidents.items()]

        def arr(attr, dtype=float):
            return np.array([getattr(c, attr) for c in cats], dtype=dtype)

        return cls(
            base_rate=arr("base_rate"),
            rural_rate_factor=arr("rural_rate_factor"),
            latent=arr("latent", bool),
            visibility=arr("visibility"),
            has_victim=arr("has_victim", bool),
            victim_report_prob=arr("victim_report_prob"),
            public_report_hazard=arr("public_report_hazard"),
            report_window_days=arr("report_window_days"),
            patrol_detect_prob=arr("patrol_detect_prob"),
            route=np.array([HD[c.route] for c in cats], dtype=np.int8),
            joint=arr("joint", bool),
            service_mean_days=arr("service_mean_days"),
            service_cv=arr("service_cv"),
            exponential=np.array([c.service_dist == "exponential" for c in cats]),
            on_spot_fix_prob=arr("on_spot_fix_prob"),
            on_spot_hours=arr("on_spot_hours"),
            success_prob=arr("success_prob"),
            paper_close_prob=arr("paper_close_prob"),
            deadline_days=arr("deadline_days"),
            severity_sigma=arr("severity_sigma"),
            harm_hazard=arr("harm_hazard"),
            escalation_hazard=arr("escalation_hazard"),
            deterrable=arr("deterrable", bool),
            disorder_sensitivity=arr("disorder_sensitivity"),
            near_repeat_branching=arr("near_repeat_branching"),
            near_repeat_days=arr("near_repeat_days"),
            near_repeat_same_cell=arr("near_repeat_same_cell"),
            safety_impact=arr("safety_impact"),
        )


def arrival_rates(population: np.ndarray, risk: np.ndarray, cp: CategoryArrays,
                  deter: np.ndarray, disorder: np.ndarray,
                  urban: np.ndarray | None = None) -> np.ndarray:
    """Expected background incidents per cell for one day, (n_categories, n_cells)::

        population x base_rate / 1000 / 365 x (rural_rate_factor in rural cells) x risk
                   x deterrence (deterrable categories) x (1 + s ln(1 + D)) (broken windows)

    Args:
        population, risk: the city's per-cell arrays (risk has population-weighted mean 1).
        cp: the categories' parameters.
        deter: per-cell deterrence multiplier, exp(-deterrence_per_visit x guardian presence).
        disorder: per-cell D, visibility-weighted unresolved latent problems in the Moore
            neighbourhood.
        urban: per-cell land use (``City.urban``); cells where it is False take each
            category's ``rural_rate_factor``. None: every cell at the urban rate.
    """
    base = population * risk / 1000.0 / 365.0
    rate = cp.base_rate[:, None] * base[None, :]
    if urban is not None:
        rate = np.where(np.asarray(urban, bool)[None, :], rate, rate * cp.rural_rate_factor[:, None])
    rate = np.where(cp.deterrable[:, None], rate * deter[None, :], rate)
    return rate * (1.0 + cp.disorder_sensitivity[:, None] * np.log1p(disorder)[None, :])


def draw_severity(cat: np.ndarray, cp: CategoryArrays, rng: np.random.Generator) -> np.ndarray:
    """Mean-one lognormal severity per incident (sets priority and the high-risk tier)."""
    sig = cp.severity_sigma[cat]
    return np.exp(sig * rng.standard_normal(len(cat)) - 0.5 * sig**2).astype(np.float32)


def background_arrivals(
    rate: np.ndarray, day: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one day's background incidents.

    Args:
        rate: (n_categories, n_cells) expected incidents per cell for this day.
        day: the day index; occurrence times are uniform in [day, day + 1).
        rng: the day's arrivals stream.

    Returns:
        (category, cell, time) arrays, sorted by time.

    Per category, the total is Poisson(sum of rates) and cells are drawn in proportion to their
    rates: by Poisson splitting this is the same law as independent Poisson counts per cell,
    at O(cells + incidents) cost instead of one Poisson draw per cell.
    """
    cats, cells = [], []
    for k in range(rate.shape[0]):
        r = rate[k]
        total = float(r.sum())
        if total <= 0.0:
            continue
        n = rng.poisson(total)
        if n == 0:
            continue
        cum = np.cumsum(r)
        idx = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        np.minimum(idx, len(r) - 1, out=idx)
        cats.append(np.full(n, k, dtype=np.int8))
        cells.append(idx.astype(np.int32))
    if not cats:
        empty = np.zeros(0)
        return empty.astype(np.int8), empty.astype(np.int32), empty
    cat = np.concatenate(cats)
    cell = np.concatenate(cells)
    t = day + rng.random(len(cat))
    order = np.argsort(t, kind="stable")
    return cat[order], cell[order], t[order]


@dataclass
class Offspring:
    """Triggered incidents waiting for their day (Hawkes cluster representation)."""

    category: np.ndarray
    cell: np.ndarray
    time: np.ndarray
    parent: np.ndarray
    keep_u: np.ndarray  # uniform for thinning by deterrence on the day they fall due


def draw_offspring(
    ids: np.ndarray,
    cat: np.ndarray,
    cell: np.ndarray,
    t: np.ndarray,
    cp: CategoryArrays,
    neighbours: np.ndarray,
    rng: np.random.Generator,
) -> Offspring | None:
    """Direct near-repeat offspring of new incidents: Poisson(eta_k) each, exponential delay
    with mean ``near_repeat_days``, in the same cell with probability ``near_repeat_same_cell``
    and otherwise in a uniformly chosen valid Moore neighbour."""
    eta = cp.near_repeat_branching[cat]
    if not np.any(eta > 0):
        return None
    n_kids = rng.poisson(eta)
    total = int(n_kids.sum())
    if total == 0:
        return None
    par = np.repeat(np.arange(len(ids)), n_kids)
    pcat = cat[par]
    delay = rng.exponential(cp.near_repeat_days[pcat])
    same = rng.random(total) < cp.near_repeat_same_cell[pcat]
    nb = neighbours[cell[par]]
    valid = nb >= 0
    n_valid = valid.sum(axis=1)
    pick = np.minimum((rng.random(total) * n_valid).astype(np.int64), np.maximum(n_valid - 1, 0))
    # the pick-th valid neighbour: rank valid entries within each row
    rank = np.cumsum(valid, axis=1) - 1
    chosen = np.where(valid & (rank == pick[:, None]), nb, -1).max(axis=1)
    kid_cell = np.where(same | (chosen < 0), cell[par], chosen).astype(np.int32)
    return Offspring(
        category=pcat.astype(np.int8),
        cell=kid_cell,
        time=t[par] + delay,
        parent=ids[par],
        keep_u=rng.random(total),
    )
