"""Patrols: where the few, mobile agents go each day (DESIGN.md sections 3 and 5).

:class:`Patrols` plans each day's movements of every mobile role at once, one vectorised draw
per role: grid workers' hour budgets (paperwork, case work, patrol) and the cells they visit;
police beats (townships, or with fusion groups of grids); volunteer police rounds; community
volunteers' walks; riders' delivery passes; joint police-grid screening rounds (with fusion);
drone overflights. The result, :class:`DayVisits`, is visit counts per cell, which give both
guardian presence (deterrence, perceived safety: :mod:`sim.safety`) and the chances of
discovery (:mod:`sim.channels`).

Inputs are explicit: the scenario and the city at construction; each day the stream and the
case-work hours waiting for each grid's workers (the model keeps that ledger: on-the-spot fixes
and community cases add to it, each day's plan consumes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sim.city import City
    from sim.scenario import Scenario


def _stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = np.floor(x)
    return (base + (rng.random(len(x)) < (x - base))).astype(np.int64)


def sample_in_units(
    unit_ptr: np.ndarray,
    unit_cells: np.ndarray,
    weight_sorted: np.ndarray,
    visits: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``visits[u]`` cells (with replacement) inside each unit ``u``, in proportion to
    weight.

    Args:
        unit_ptr: (n_units+1,) CSR pointer into ``unit_cells``.
        unit_cells: cells sorted by unit.
        weight_sorted: weight of each entry of ``unit_cells`` (>= 0).
        visits: (n_units,) number of visits per unit.
        rng: the stream to draw from.

    Returns:
        (cells, unit of each visit). A unit whose weights are all zero is sampled uniformly.
    """
    visits = np.asarray(visits, dtype=np.int64)
    total = int(visits.sum())
    if total == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    unit = np.repeat(np.arange(len(visits)), visits)
    lo, hi = unit_ptr[unit], unit_ptr[unit + 1]
    # cumulative weights with a tiny uniform floor so all-zero units still work
    w = weight_sorted.astype(np.float64) + 1e-12
    cum = np.concatenate([[0.0], np.cumsum(w)])
    target = cum[lo] + rng.random(total) * (cum[hi] - cum[lo])
    pos = np.searchsorted(cum, target, side="right") - 1
    pos = np.clip(pos, lo, hi - 1)
    return unit_cells[pos].astype(np.int32), unit


@dataclass
class DayVisits:
    """Visit counts per cell for one day, by kind of visitor."""

    worker: np.ndarray
    police: np.ndarray          # officers and volunteer police together
    volunteer: np.ndarray       # community volunteers (phone channel)
    rider: np.ndarray           # delivery riders' passes (phone channel)
    screened: np.ndarray        # bool: cell screened jointly today
    drone: np.ndarray           # bool: cell overflown today

    def guardians(self, volunteer_weight: float) -> np.ndarray:
        """Visible guardian visits per cell: workers, officers, volunteer police and (weighted)
        community volunteers. Riders are not guardians."""
        return self.worker + self.police + volunteer_weight * self.volunteer


class Patrols:
    """Daily movements of grid workers, police, volunteers, riders, screening and drones."""

    def __init__(self, config: Scenario, city: City):
        self.config = config
        self.city = city
        cfg = config
        n_cells = city.n_cells
        gw = cfg.grid_workers
        pw = cfg.paperwork
        # Paperwork hours per worker per working day (forms and inspection items).
        self.paper_h_per_worker = (
            pw.forms * pw.hours_per_form_per_month
            + pw.inspection_items * pw.hours_per_item_per_month
        ) / pw.working_days_per_month
        cell_time_h = gw.visit_hours_per_cell + city.cell_km / gw.walk_kmh
        households = city.grid_population / gw.household_size
        # Hours per day a grid's workers need to walk every cell once per revisit period and
        # call on every household once per household revisit period. Bigger grids need more.
        self.required_patrol_h = (
            city.grid_n_cells * cell_time_h / gw.target_revisit_days
            + households * gw.household_visit_hours / gw.household_revisit_days
        )
        # Mean hours per cell visit, household calls included (a visit covers a cell's share).
        self.hours_per_visit = self.required_patrol_h / (city.grid_n_cells / gw.target_revisit_days)
        # Grid workers (full-time equivalents) per grid: per_grid each, or a city total spread
        # over grids by population (a worker may cover parts of several grids). Staff and grid
        # count are separate levers: regridding with the same staff keeps the total.
        if gw.total is None:
            self.workers_grid = np.full(city.n_grids, float(gw.per_grid))
        else:
            pop = city.grid_population.astype(np.float64)
            self.workers_grid = gw.total * pop / pop.sum() if pop.sum() > 0 else np.zeros(city.n_grids)
        self.last_worker_visit = np.full(n_cells, -1_000_000.0)
        self.presence = np.zeros(n_cells)          # EWMA of guardian visits (visits/day)
        self.hotspot = np.zeros(n_cells)           # EWMA of incident counts (hot-spot policing)
        n_g = city.n_grids
        self.worker_paper_h_grid = np.zeros(n_g)
        self.worker_case_h_grid = np.zeros(n_g)
        self.worker_patrol_h_grid = np.zeros(n_g)
        self.worker_util_grid = np.zeros(n_g)
        self.worker_last_cell = np.full(n_g, -1, dtype=np.int64)
        # Police beats: townships normally; under fusion, groups of contiguous grids (grid ids
        # are spatially ordered by the partition), one or more officers per group.
        officers = cfg.police.officers
        if cfg.fusion.enabled and officers > 0:
            if officers >= n_g:
                beat_of_grid = np.arange(n_g)
            else:
                beat_of_grid = (np.arange(n_g) * officers) // n_g
            self.beat_of_cell = beat_of_grid[city.grid].astype(np.int64)
        else:
            self.beat_of_cell = city.township.astype(np.int64)
        self.n_beats = int(self.beat_of_cell.max()) + 1
        order = np.argsort(self.beat_of_cell, kind="stable")
        self.beat_cells = order.astype(np.int32)
        self.beat_ptr = np.concatenate(
            [[0], np.cumsum(np.bincount(self.beat_of_cell, minlength=self.n_beats))]
        )
        beat_pop = np.bincount(self.beat_of_cell, weights=city.population, minlength=self.n_beats)
        if cfg.fusion.enabled and officers >= self.n_beats:
            # Fusion staffs every grid beat alike (Anyuan: an officer and an auxiliary per
            # grid); officers left over go where people are.
            even = officers // self.n_beats
            self.officers_per_beat = even + allocate(officers - even * self.n_beats, beat_pop + 1e-9)
        else:
            # Officers spread over beats in proportion to population (largest remainder).
            self.officers_per_beat = allocate(officers, beat_pop + 1e-9)
        # Response travel: half the side of a square beat of the beat's area, at driving speed.
        beat_area = np.bincount(self.beat_of_cell, minlength=self.n_beats) * city.cell_km**2
        self.response_travel_days_of_cell = (
            0.5 * np.sqrt(beat_area) / cfg.police.response_speed_kmh / 24.0
        )[self.beat_of_cell]
        vp = cfg.volunteers
        self.vpolice_per_beat = allocate(int(round(vp.volunteer_police)), beat_pop + 1e-9)
        self.beat_last_cell = np.full(self.n_beats, -1, dtype=np.int64)
        # Community volunteers live among residents: per grid in proportion to population.
        self.volunteers_per_grid = allocate(int(round(vp.community)), city.grid_population + 1e-9)
        self.pop_weight = city.population.astype(np.float64) + 0.05 * city.population.mean()
        self.pop_p = self.pop_weight / self.pop_weight.sum()
        self.today: DayVisits | None = None

    # ------------------------------------------------------------------ workers
    def plan_workers(self, day: int, case_hours: np.ndarray) -> np.ndarray:
        """Split each grid's worker hours into paperwork, case work and patrol.

        Args:
            day: the model day.
            case_hours: (n_grids,) hours of case work waiting for each grid's workers (on-the-spot
                fixes and community cases routed to them, and work carried over).

        Returns:
            (n_grids,) case hours left undone today (the model carries them over when
            ``grid_workers.overload_slowdown`` is on).
        """
        cfg = self.config
        per = self.workers_grid
        budget = per * cfg.grid_workers.hours_per_day
        paper = np.minimum(budget, per * self.paper_h_per_worker)
        case = np.minimum(budget - paper, case_hours)
        # Every hour left after paperwork and case work goes to patrol and household calls.
        patrol = np.maximum(0.0, budget - paper - case)
        self.worker_paper_h_grid = paper
        self.worker_case_h_grid = case
        self.worker_patrol_h_grid = patrol
        # Workload relative to hours: paperwork + case work + the patrol the grid needs to meet
        # its revisit targets. Above 1 the worker cannot keep up and coverage falls.
        demand = per * self.paper_h_per_worker + case_hours + self.required_patrol_h
        with np.errstate(invalid="ignore", divide="ignore"):
            self.worker_util_grid = np.where(budget > 0, demand / budget, np.inf)
        # Days a new community case waits for the grid's workers: the case work already
        # waiting beyond today's free hours, worked through at the free hours per day (at least
        # one hour a day: someone always gets to it eventually).
        free = budget - paper
        self.case_delay_days_grid = np.maximum(0.0, case_hours - free) / np.maximum(free, 1.0)
        return case_hours - case

    def per_worker(self, per_grid_hours: np.ndarray) -> float:
        """City-wide hours per worker (full-time equivalent) of a per-grid quantity."""
        w = self.workers_grid.sum()
        return float(per_grid_hours.sum() / w) if w > 0 else float("nan")

    # ------------------------------------------------------------------ one day
    def draw(self, day: int, rng: np.random.Generator, case_hours: np.ndarray) -> DayVisits:
        """Draw the day's visits of every mobile role (one vectorised draw per role).

        Args:
            day: the model day.
            rng: the day's ``patrol`` stream.
            case_hours: (n_grids,) case-work hours waiting for each grid's workers
                (see :meth:`plan_workers`); they come before patrol.

        Returns:
            The day's visit counts per cell. Guardian presence (:attr:`presence`) is updated
            from them and feeds deterrence from the next day on.
        """
        cfg = self.config
        city = self.city
        n = city.n_cells
        self.case_hours_left = self.plan_workers(day, case_hours)

        # Joint screening rounds: each grid once every interval_days, staggered by grid id.
        screened = np.zeros(n, dtype=bool)
        js = cfg.channels.joint_screening
        screening_grids = np.zeros(city.n_grids, dtype=bool)
        if cfg.fusion.enabled and js.enabled:
            screening_grids = (np.arange(city.n_grids) + day) % js.interval_days == 0
            screened = screening_grids[city.grid]

        # Grid workers: patrol visits, stale cells first (weight = days since last visit).
        visits_g = _stochastic_round(self.worker_patrol_h_grid / self.hours_per_visit, rng)
        visits_g[screening_grids] = 0  # the screening round takes the worker's patrol time
        stale = (day - self.last_worker_visit[city.grid_cells]).clip(1, 10_000)
        wcells, wunit = sample_in_units(city.grid_cell_ptr, city.grid_cells, stale, visits_g, rng)
        self.last_worker_visit[wcells] = day
        self.worker_last_cell[wunit] = wcells
        worker = np.bincount(wcells, minlength=n).astype(np.float64)

        # Police and volunteer police: visits within beats.
        pc = cfg.police
        if pc.strategy == "hotspot":
            pw = self.hotspot + 0.01
        else:
            pw = self.pop_weight
        pw_sorted = pw[self.beat_cells]
        police_visits = _stochastic_round(
            self.officers_per_beat * pc.patrol_hours_per_day / pc.visit_hours_per_cell, rng
        )
        vp = cfg.volunteers
        vpol_visits = _stochastic_round(
            self.vpolice_per_beat * vp.volunteer_police_active_share * vp.volunteer_cells_per_day, rng
        )
        pcells, punit = sample_in_units(self.beat_ptr, self.beat_cells, pw_sorted,
                                        police_visits + vpol_visits, rng)
        self.beat_last_cell[punit] = pcells
        police = np.bincount(pcells, minlength=n).astype(np.float64)

        # Community volunteers: walks in their home grid, weighted by population.
        vol_visits = _stochastic_round(
            self.volunteers_per_grid * vp.community_active_share * vp.volunteer_cells_per_day, rng
        )
        vcells, _ = sample_in_units(city.grid_cell_ptr, city.grid_cells,
                                    self.pop_weight[city.grid_cells], vol_visits, rng)
        volunteer = np.bincount(vcells, minlength=n).astype(np.float64)

        # Riders: delivery passes across the whole city, where the customers are.
        # Only counts per cell matter for riders, so draw them as one multinomial (the same law
        # as sampling every pass, at O(cells) instead of O(passes x log cells)).
        n_pass = int(vp.riders * vp.rider_cells_per_day)
        rider = rng.multinomial(n_pass, self.pop_p).astype(np.float64) if n_pass else np.zeros(n)

        drone = np.zeros(n, dtype=bool)
        dc = cfg.channels.drone
        if dc.enabled and dc.cells_per_day > 0:
            drone[rng.choice(n, size=min(n, dc.cells_per_day), replace=False)] = True

        visits = DayVisits(worker, police, volunteer, rider, screened, drone)
        # Guardian presence feeds deterrence from the next day on (so the first day's arrivals
        # never depend on policy: common random numbers).
        dyn = cfg.dynamics
        decay = np.exp(-1.0 / dyn.presence_memory_days)
        self.presence = self.presence * decay + (1 - decay) * visits.guardians(
            dyn.community_volunteer_guardian_weight
        )
        self.today = visits
        return visits

    def record_incidents(self, cells: np.ndarray) -> None:
        """Update the hot-spot history with today's new incidents."""
        decay = np.exp(-1.0 / self.config.dynamics.hotspot_memory_days)
        self.hotspot *= decay
        if len(cells):
            self.hotspot += np.bincount(cells, minlength=len(self.hotspot))


def allocate(total: int, weights: np.ndarray) -> np.ndarray:
    """Largest-remainder allocation of an integer total in proportion to weights."""
    weights = np.asarray(weights, dtype=np.float64)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    base = np.floor(exact).astype(np.int64)
    rest = total - int(base.sum())
    if rest > 0:
        order = np.argsort(-(exact - base), kind="stable")
        base[order[:rest]] += 1
    return base
