"""Channels: how the system learns of an incident (DESIGN.md section 5).

Two parts:

* :class:`Patrols` plans each day's movements of the few, mobile agents, all at once per role:
  grid workers' hour budgets (paperwork, case work, patrol) and the cells they visit; police
  beats; volunteer police rounds; community volunteers' walks; riders' delivery passes; joint
  police-grid screening rounds (with fusion); drone overflights. The result is visit counts per
  cell, which give both guardian presence (deterrence, perceived safety) and discovery chances.
* :func:`discover` turns those counts into detections of open incidents, channel by channel:

  ``hotline``          victims and witnesses (non-latent, at occurrence) and neighbours (latent,
                       a daily hazard per 100 residents), scaled by trust, feedback and party
                       membership;
  ``snap_report``      the phone app: app-using residents, riders and community volunteers
                       passing latent problems;
  ``grid_patrol``      grid workers' visits (they may fix small problems on the spot);
  ``police_patrol``    officers' and volunteer police visits;
  ``joint_screening``  with fusion, every grid is screened jointly every ``interval_days``;
  ``drone``            optional overflights that find environment problems.

A detection by a channel within a visit happens at a uniform time in the part of the day after
the incident occurred; the report follows after an exponential latency. Several channels may
detect one incident: the first is its discovery, every detection is a report, and the surplus
is counted as duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.codes import Category, Handler
from sim.incidents import CH, KNOWN, LAPSED, PAPER_CLOSED, RESOLVED, UNDISCOVERED, CategoryArrays

if TYPE_CHECKING:
    from sim.model import GovernanceModel


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

    def __init__(self, model: GovernanceModel):
        self.model = model
        cfg = model.config
        city = model.city
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
        self.last_worker_visit = np.full(n_cells, -1_000_000.0)
        self.presence = np.zeros(n_cells)          # EWMA of guardian visits (visits/day)
        self.hotspot = np.zeros(n_cells)           # EWMA of incident counts (hot-spot policing)
        self.worker_case_hours_pending = np.zeros(city.n_grids)  # filled by the dispatcher
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
            self.officers_per_beat = even + _allocate(officers - even * self.n_beats, beat_pop + 1e-9)
        else:
            # Officers spread over beats in proportion to population (largest remainder).
            self.officers_per_beat = _allocate(officers, beat_pop + 1e-9)
        # Response travel: half the side of a square beat of the beat's area, at driving speed.
        beat_area = np.bincount(self.beat_of_cell, minlength=self.n_beats) * city.cell_km**2
        self.response_travel_days_of_cell = (
            0.5 * np.sqrt(beat_area) / cfg.police.response_speed_kmh / 24.0
        )[self.beat_of_cell]
        vp = cfg.volunteers
        self.vpolice_per_beat = _allocate(int(round(vp.volunteer_police)), beat_pop + 1e-9)
        self.beat_last_cell = np.full(self.n_beats, -1, dtype=np.int64)
        # Community volunteers live among residents: per grid in proportion to population.
        self.volunteers_per_grid = _allocate(int(round(vp.community)), city.grid_population + 1e-9)
        self.pop_weight = city.population.astype(np.float64) + 0.05 * city.population.mean()
        self.pop_p = self.pop_weight / self.pop_weight.sum()
        self.today: DayVisits | None = None

    # ------------------------------------------------------------------ workers
    def plan_workers(self, day: int) -> None:
        """Split each grid's worker hours into paperwork, case work and patrol."""
        cfg = self.model.config
        per = cfg.grid_workers.per_grid
        budget = per * cfg.grid_workers.hours_per_day
        paper = np.full(self.model.city.n_grids, min(budget, per * self.paper_h_per_worker))
        case = np.minimum(budget - paper, self.worker_case_hours_pending)
        # Every hour left after paperwork and case work goes to patrol and household calls.
        patrol = np.maximum(0.0, budget - paper - case)
        self.worker_paper_h_grid = paper
        self.worker_case_h_grid = case
        self.worker_patrol_h_grid = patrol
        # Workload relative to hours: paperwork + case work + the patrol the grid needs to meet
        # its revisit targets. Above 1 the worker cannot keep up and coverage falls.
        demand = per * self.paper_h_per_worker + self.worker_case_hours_pending + self.required_patrol_h
        with np.errstate(invalid="ignore", divide="ignore"):
            self.worker_util_grid = np.where(budget > 0, demand / budget, np.inf)
        self.worker_case_hours_pending = np.zeros_like(self.worker_case_hours_pending)

    # ------------------------------------------------------------------ one day
    def draw(self, day: int, rng: np.random.Generator) -> DayVisits:
        """Draw the day's visits of every mobile role (one vectorised draw per role)."""
        model = self.model
        cfg = model.config
        city = model.city
        n = city.n_cells
        self.plan_workers(day)

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
        decay = np.exp(-1.0 / self.model.config.dynamics.hotspot_memory_days)
        self.hotspot *= decay
        if len(cells):
            self.hotspot += np.bincount(cells, minlength=len(self.hotspot))


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- discovery
@dataclass
class Detections:
    """Outcome of one day's discovery pass."""

    new_ids: np.ndarray       # newly discovered incidents (now KNOWN or fixed on the spot)
    new_report_t: np.ndarray  # their first report times
    reopened_ids: np.ndarray  # paper-closed problems found again (reopened)
    reopened_t: np.ndarray
    on_spot_ids: np.ndarray   # fixed on the spot by the grid worker (subset of new_ids)
    reports_by_channel: np.ndarray  # (n_channels,) all reports today, duplicates included
    first_by_channel: np.ndarray    # (n_channels,) first reports today (discoveries)
    rider_reports: int
    volunteer_reports: int
    lapsed: int


def discover(
    model: GovernanceModel, day: int, visits: DayVisits, rng: np.random.Generator
) -> Detections:
    """Find open incidents through every enabled channel (see the module docstring)."""
    cfg = model.config
    ch = cfg.channels
    log = model.incidents
    cp: CategoryArrays = model.cat
    res = model.residents
    city = model.city
    n_ch = len(CH)
    reports_by_channel = np.zeros(n_ch, dtype=np.int64)
    first_by_channel = np.zeros(n_ch, dtype=np.int64)

    # Lapse: non-latent incidents nobody reported within their window become dark figure.
    ids = log.open_ids()
    st = log.state[ids]
    cat = log.category[ids]
    t_occ = log.t_occurred[ids]
    lapse = (st == UNDISCOVERED) & ~cp.latent[cat] & (t_occ + cp.report_window_days[cat] <= day)
    lapsed_ids = ids[lapse]
    if len(lapsed_ids):
        log.state[lapsed_ids] = LAPSED
        log.t_lapsed[lapsed_ids] = log.t_occurred[lapsed_ids] + cp.report_window_days[log.category[lapsed_ids]]
    keep = ~lapse
    ids, st, cat, t_occ = ids[keep], st[keep], cat[keep], t_occ[keep]
    # Problems known and in hand are not re-detected by patrols (the system already has them);
    # undiscovered ones, and paper-closed latent problems that persist, are.
    latent = cp.latent[cat]
    cand = (st == UNDISCOVERED) | ((st == PAPER_CLOSED) & latent)
    ids, st, cat, t_occ, latent = ids[cand], st[cand], cat[cand], t_occ[cand], latent[cand]
    m = len(ids)
    empty = np.zeros(0, np.int64)
    nothing = Detections(empty, np.zeros(0), empty, np.zeros(0), empty,
                         reports_by_channel, first_by_channel, 0, 0, int(lapse.sum()))
    if m == 0:
        return nothing
    cell = log.cell[ids]
    start = np.maximum(t_occ, day)
    # exposed part of today: from occurrence (or midnight) to the end of the day, or for a
    # non-latent incident to the end of its report window if that comes first
    stop = np.where(latent, day + 1.0, np.minimum(day + 1.0, t_occ + cp.report_window_days[cat]))
    frac = np.clip(stop - start, 0.0, 1.0)
    vis = cp.visibility[cat]
    q = cp.patrol_detect_prob[cat]

    p = np.zeros((m, n_ch))
    # hotline: victims at occurrence (non-latent, occurred today, first day only); neighbours
    # of latent problems every day, per 100 residents of the cell.
    prop_cell = model.cell_propensity
    if ch.hotline.enabled:
        today_new = (~latent) & (t_occ >= day) & (st == UNDISCOVERED)
        vic = log.victim[ids]
        vprop = np.where(vic >= 0, prop_from_victim(model, vic), prop_cell[cell])
        p[:, CH["hotline"]] = np.where(today_new, np.minimum(1.0, cp.victim_report_prob[cat] * vprop), 0.0)
        lat_h = cp.public_report_hazard[cat] * city.population[cell] / 100.0 * prop_cell[cell]
        p[:, CH["hotline"]] = np.where(latent, 1.0 - np.exp(-lat_h * frac), p[:, CH["hotline"]])
    p_rider = p_vol = np.zeros(m)
    if ch.snap_report.enabled:
        sr = ch.snap_report
        app_people = model.app_people_per_cell[cell]
        p_res = 1.0 - np.power(1.0 - np.minimum(1.0, sr.resident_hazard * vis), app_people * frac)
        p_rider = 1.0 - np.power(1.0 - sr.rider_detect_prob * vis, visits.rider[cell] * frac)
        p_vol = 1.0 - np.power(1.0 - sr.volunteer_detect_prob * vis, visits.volunteer[cell] * frac)
        p_snap = 1.0 - (1.0 - p_res) * (1.0 - p_rider) * (1.0 - p_vol)
        p[:, CH["snap_report"]] = np.where(latent, p_snap, 0.0)
    if ch.grid_patrol.enabled:
        p[:, CH["grid_patrol"]] = 1.0 - np.power(1.0 - q * frac, visits.worker[cell])
    if ch.police_patrol.enabled:
        attention = cfg.fusion.police_grid_attention if cfg.fusion.enabled else cfg.police.grid_matter_attention
        police_matter = (cat == Category.PUBLIC_SAFETY) | (cat == Category.DISPUTE)
        qp = q * np.where(police_matter, 1.0, attention)
        p[:, CH["police_patrol"]] = 1.0 - np.power(1.0 - qp * frac, visits.police[cell])
    if cfg.fusion.enabled and ch.joint_screening.enabled:
        p[:, CH["joint_screening"]] = np.where(
            visits.screened[cell] & latent, ch.joint_screening.detect_prob * frac, 0.0
        )
    if ch.drone.enabled:
        env = cat == Category.ENVIRONMENT
        p[:, CH["drone"]] = np.where(visits.drone[cell] & env, ch.drone.detect_prob * frac, 0.0)

    u = rng.random((m, n_ch))
    hit = u < p
    any_hit = hit.any(axis=1)
    if not any_hit.any():
        return nothing
    # detection and report times per channel
    t_det = start[:, None] + rng.random((m, n_ch)) * np.maximum(stop - start, 0.0)[:, None]
    # victims call right after the incident
    t_det[:, CH["hotline"]] = np.where(~latent, t_occ, t_det[:, CH["hotline"]])
    lat_h = np.array([
        ch.hotline.latency_hours, ch.snap_report.latency_hours, ch.grid_patrol.latency_hours,
        ch.police_patrol.latency_hours, ch.joint_screening.latency_hours, ch.drone.latency_hours,
    ])
    t_rep = t_det + rng.exponential(1.0, (m, n_ch)) * (lat_h / 24.0)[None, :]
    t_det = np.where(hit, t_det, np.inf)
    t_rep = np.where(hit, t_rep, np.inf)
    first = np.argmin(t_det, axis=1)

    sel = np.flatnonzero(any_hit)
    hid = ids[sel]
    log.reports[hid] += hit[sel].astype(np.int16)
    reports_by_channel += hit[sel].sum(axis=0)
    # attribute snap reports to riders / volunteers / residents in proportion to their hazards
    snap_hit = hit[sel, CH["snap_report"]]
    rider_reports = volunteer_reports = 0
    if ch.snap_report.enabled and snap_hit.any():
        ps = p[sel, CH["snap_report"]]
        with np.errstate(invalid="ignore", divide="ignore"):
            share_r = np.where(ps > 0, p_rider[sel] / ps, 0)
            share_v = np.where(ps > 0, p_vol[sel] / ps, 0)
        who = rng.random(len(sel))
        rider_reports = int((snap_hit & (who < share_r)).sum())
        volunteer_reports = int((snap_hit & (who >= share_r) & (who < share_r + share_v)).sum())

    is_new = st[sel] == UNDISCOVERED
    new_sel = sel[is_new]
    new_ids = ids[new_sel]
    f = first[new_sel]
    t_first = t_det[new_sel, f]
    t_first_rep = t_rep[new_sel, f]
    log.state[new_ids] = KNOWN
    log.t_discovered[new_ids] = t_first
    log.t_reported[new_ids] = t_first_rep
    log.first_channel[new_ids] = f
    first_by_channel += np.bincount(f, minlength=n_ch)
    # reporter: the victim when the victim called, else a resident of the cell for the
    # resident channels (hotline, snap); staff channels have no resident reporter.
    resident_ch = (f == CH["hotline"]) | (f == CH["snap_report"])
    vic = log.victim[new_ids]
    rnd_res = res.random_in_cells(log.cell[new_ids], rng.random(len(new_ids)))
    reporter = np.where(resident_ch, np.where((f == CH["hotline"]) & (vic >= 0), vic, rnd_res), -1)
    log.reporter[new_ids] = reporter
    rr = reporter[reporter >= 0]
    if len(rr):
        np.add.at(res.reports_made, rr, 1)
        res.last_event_day[rr] = day

    # On-the-spot fixes by the grid worker who found it (or the screening team).
    by_worker = (f == CH["grid_patrol"]) | (f == CH["joint_screening"])
    fix = by_worker & (rng.random(len(new_ids)) < cp.on_spot_fix_prob[log.category[new_ids]])
    fixed_ids = new_ids[fix]
    if len(fixed_ids):
        hours = cp.on_spot_hours[log.category[fixed_ids]]
        t_fix = log.t_reported[fixed_ids] + hours / 24.0
        log.state[fixed_ids] = RESOLVED
        log.t_closed[fixed_ids] = t_fix
        log.t_resolved[fixed_ids] = t_fix
        log.route[fixed_ids] = Handler.ON_SPOT
        log.handler[fixed_ids] = Handler.ON_SPOT
        log.attempts[fixed_ids] = 1
        g = city.grid[log.cell[fixed_ids]]
        model.patrols.worker_case_hours_pending += np.bincount(g, weights=hours, minlength=city.n_grids)

    # Paper-closed problems found again by anyone: reopened.
    reo_sel = sel[~is_new]
    reo_ids = ids[reo_sel]
    reo_t = t_rep[reo_sel, first[reo_sel]]

    keep_new = ~fix
    return Detections(
        new_ids=new_ids[keep_new],
        new_report_t=t_first_rep[keep_new],
        reopened_ids=reo_ids,
        reopened_t=reo_t,
        on_spot_ids=fixed_ids,
        reports_by_channel=reports_by_channel,
        first_by_channel=first_by_channel,
        rider_reports=rider_reports,
        volunteer_reports=volunteer_reports,
        lapsed=int(lapse.sum()),
    )


def prop_from_victim(model: GovernanceModel, victim: np.ndarray) -> np.ndarray:
    """Hotline propensity of specific residents (victims)."""
    out = np.ones(len(victim))
    ok = victim >= 0
    out[ok] = model.residents.propensity_of(victim[ok], model.day)
    return out
