"""Resource bounds and degenerate cities: a scenario is checked before anything is allocated.

A scenario can pass every per-key range and still ask for the impossible: ``city.population:
1e15`` (petabytes of resident arrays), ``police.officers: 1e9`` (a billion Mesa agents, hours
to build), divisors so small that a day's patrol visits overflow, or a city with fewer people
than grids (empty grids, NaN metrics). :func:`check_scenario` estimates what a model of the
scenario would allocate and do per day from the scenario alone (no model is built) and refuses
it with the key to change and the estimated size.

The estimates follow the model's own sizing (``GovernanceModel.__init__``: resident arrays,
per-cell arrays, the incident log's initial capacity, one Mesa agent per grid worker, officer
and volunteer agent; ``Patrols.draw``: visits per day). The per-item byte figures are measured
round numbers on CPython 3.12 / numpy 2, deliberately on the high side.

Depends on nothing in :mod:`sim` (duck-typed on the scenario's attributes), so the scenario
module can call it during validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Most memory a scenario may need (estimated), bytes: ~27 times the Pingxiang city scenario.
MAX_BYTES = 16 * 2**30
#: Most Mesa agents (grid workers, officers, volunteer agents): building one takes ~10 us, so
#: this many take ~10 s. Pingxiang has ~45,000.
MAX_AGENTS = 1_000_000
#: Most resident agents (``city.population / population.scale``): ~11 times Pingxiang.
MAX_RESIDENTS = 20_000_000
#: Most visits (grid workers, officers, volunteers) drawn per day: ~100 times Pingxiang.
MAX_VISITS_PER_DAY = 10_000_000
#: Most rider passes per day (drawn as one multinomial, whose count is an int64).
MAX_RIDER_PASSES = 10**15
#: Most work smoothing the risk field: cells x length of the Gaussian kernel (8 standard
#: deviations, in cells). The default district needs 40,000; the limit takes a few seconds.
MAX_SMOOTHING_WORK = 10**9
#: Unresolved visible problems around a cell at which the broken-windows multiplier of the
#: incident rate (1 + disorder_sensitivity x ln(1 + D)) is taken for the size estimate: a
#: busy neighbourhood, not a bound the model enforces.
REFERENCE_DISORDER = 100

# Bytes per item (see the module docstring).
BYTES_PER_RESIDENT = 120
BYTES_PER_CELL = 400
BYTES_PER_INCIDENT = 160
BYTES_PER_AGENT = 2_000
BYTES_PER_VISIT = 32


class LimitError(ValueError):
    """A scenario beyond a resource bound or a degenerate city; ``key`` is the key to change."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Estimate:
    """What a model of a scenario would allocate and draw (see :func:`estimate`)."""

    cells: int
    residents: float            # resident agents
    agents: float               # Mesa agents: grid workers, officers, volunteer agents
    incidents_per_day: float    # expected, near repeats included
    log_rows: float             # the incident log's initial capacity
    visits_per_day: float       # grid worker, officer and volunteer visits
    rider_passes: float
    smoothing_work: float       # cells x Gaussian kernel length of the risk field

    @property
    def bytes(self) -> float:
        return (BYTES_PER_RESIDENT * self.residents + BYTES_PER_CELL * self.cells
                + BYTES_PER_INCIDENT * self.log_rows + BYTES_PER_AGENT * self.agents
                + BYTES_PER_VISIT * self.visits_per_day)


def _get(obj: Any, dotted: str, default: Any = 0) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return default
    return obj


def _grid_workers(sc: Any) -> float:
    total = _get(sc, "grid_workers.total", None)
    if total is not None:
        return float(total)
    return float(_get(sc, "grid_workers.per_grid")) * sc.grids.count


def estimate(sc: Any) -> Estimate:
    """Sizes of a model of scenario ``sc`` (a validated :class:`sim.scenario.Scenario`)."""
    cells = sc.city.width * sc.city.height
    pop = float(sc.city.population)
    residents = pop / float(_get(sc, "population.scale", 1.0))
    vc = sc.volunteers
    scale = float(_get(vc, "agent_scale", 1.0))
    workers = _grid_workers(sc)
    officers = float(sc.police.officers)
    agents = workers + officers + (vc.community + vc.volunteer_police + vc.riders) / scale
    per_day = 0.0
    disorder = math.log1p(REFERENCE_DISORDER)
    for cat in (section for _, section in sc.incidents.items()):  # (name, section) pairs
        rural = max(1.0, float(getattr(cat, "rural_rate_factor", 1.0)))
        branching = min(float(cat.near_repeat_branching), 1 - 1e-12)
        feedback = 1.0 + float(getattr(cat, "disorder_sensitivity", 0.0)) * disorder
        per_day += cat.base_rate * rural * feedback / (1.0 - branching)
    per_day *= pop / 1000.0 / 365.0
    log_rows = per_day * min(sc.days, 400) * 1.3
    # scipy's gaussian_filter: a kernel of 2 x round(4 sigma) + 1 cells along each axis
    sigma_cells = sc.city.risk_correlation_km / sc.city.cell_km
    smoothing = cells * (2.0 * math.floor(4.0 * sigma_cells + 0.5) + 1.0)
    return Estimate(cells, residents, agents, per_day, log_rows, sum(_visits(sc).values()),
                    float(vc.riders) * vc.rider_cells_per_day, smoothing)


def _visits(sc: Any) -> dict[str, float]:
    """Visits drawn per day, by the key that most directly sets each role's count (an upper
    bound for grid workers: household calls only make their visits longer)."""
    gw, pc, vc = sc.grid_workers, sc.police, sc.volunteers
    cell_hours = gw.visit_hours_per_cell + sc.city.cell_km / gw.walk_kmh
    return {
        "grid_workers.visit_hours_per_cell": _grid_workers(sc) * gw.hours_per_day / cell_hours,
        "police.visit_hours_per_cell":
            float(pc.officers) * pc.patrol_hours_per_day / pc.visit_hours_per_cell,
        "volunteers.volunteer_cells_per_day":
            vc.volunteer_police * vc.volunteer_police_active_share * vc.volunteer_cells_per_day
            + vc.community * vc.community_active_share * vc.volunteer_cells_per_day,
    }


def _size(n_bytes: float) -> str:
    for unit, k in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= k:
            return f"{n_bytes / k:,.3g} {unit}"
    return f"{n_bytes / 2**10:,.3g} KiB"


def check_scenario(sc: Any) -> Estimate:
    """Refuse a scenario whose model could not be built or run within bounds.

    Returns:
        The estimate, when every bound holds.

    Raises:
        LimitError: naming the key to change, the estimated size and the bound.
    """
    city = sc.city
    g = sc.grids.count
    if city.population < g:
        raise LimitError("city.population", f"city.population ({city.population:,}) is smaller"
                         f" than grids.count ({g:,}): every grid needs residents")
    est = estimate(sc)
    if est.residents < 1:
        raise LimitError("population.scale", f"population.scale ({sc.population.scale:g}) leaves"
                         f" no resident agent ({city.population:,} people / scale ="
                         f" {est.residents:.3g}): lower population.scale")
    if est.residents < g:
        raise LimitError("population.scale", f"population.scale ({sc.population.scale:g}) leaves"
                         f" {est.residents:,.3g} resident agents for {g:,} grids: at least one per"
                         " grid is needed; lower population.scale")
    if est.residents > MAX_RESIDENTS:
        raise LimitError("city.population", f"{est.residents:,.3g} resident agents (city.population"
                         f" / population.scale) exceed the limit of {MAX_RESIDENTS:,} (estimated"
                         f" memory {_size(est.bytes)}); raise population.scale")
    if est.agents > MAX_AGENTS:
        key = max((("police.officers", float(sc.police.officers)),
                   ("grid_workers.per_grid", _grid_workers(sc)),
                   ("volunteers.agent_scale",
                    (sc.volunteers.community + sc.volunteers.volunteer_police
                     + sc.volunteers.riders) / sc.volunteers.agent_scale)),
                  key=lambda kv: kv[1])[0]
        raise LimitError(key, f"{est.agents:,.3g} staff and volunteer agents exceed the limit of"
                         f" {MAX_AGENTS:,} (building them would take ~{est.agents * 1e-5:,.3g} s"
                         f" and {_size(est.agents * BYTES_PER_AGENT)}); check {key}")
    if not math.isfinite(est.visits_per_day) or est.visits_per_day > MAX_VISITS_PER_DAY:
        by_key = _visits(sc)
        key = max(by_key, key=lambda k: by_key[k])
        raise LimitError(key, f"{est.visits_per_day:,.3g} patrol and volunteer visits a day exceed"
                         f" the limit of {MAX_VISITS_PER_DAY:,}, most of them set by {key} (check"
                         " the visit hours per cell, hours per day, staff and cells per day)")
    if est.smoothing_work > MAX_SMOOTHING_WORK:
        most = MAX_SMOOTHING_WORK / est.cells / 8 * sc.city.cell_km
        raise LimitError("city.risk_correlation_km", f"a correlation length of"
                         f" {sc.city.risk_correlation_km:,.4g} km smooths the risk field with a"
                         f" kernel {est.smoothing_work / est.cells:,.3g} cells long, over the limit"
                         f" of {MAX_SMOOTHING_WORK:,.0e} cells x kernel length; at most about"
                         f" {most:,.3g} km on this lattice (beyond the lattice's size a longer"
                         " correlation changes little)")
    if est.rider_passes > MAX_RIDER_PASSES:
        raise LimitError("volunteers.rider_cells_per_day", f"{est.rider_passes:,.3g} rider passes a"
                         f" day exceed the limit of {MAX_RIDER_PASSES:,.0e}")
    if not math.isfinite(est.bytes) or est.bytes > MAX_BYTES:
        parts = {"city.population": BYTES_PER_RESIDENT * est.residents,
                 "city.width": BYTES_PER_CELL * est.cells,
                 "incidents": BYTES_PER_INCIDENT * est.log_rows,
                 "police.officers": BYTES_PER_AGENT * est.agents}
        key = max(parts, key=lambda k: parts[k])
        raise LimitError(key, f"the model would need about {_size(est.bytes)} of memory (limit"
                         f" {_size(MAX_BYTES)}): {est.residents:,.3g} resident agents,"
                         f" {est.cells:,} cells, {est.incidents_per_day:,.3g} incidents a day;"
                         f" the largest part comes from {key}")
    return est
