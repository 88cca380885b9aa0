"""Channels: how the system learns of an incident (DESIGN.md section 5).

:class:`Channels` turns the day's visit counts (:class:`~sim.patrols.DayVisits`, drawn by
:mod:`sim.patrols`) and residents' reporting propensity into detections of open incidents,
channel by channel:

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
    from sim.agents import ResidentPopulation
    from sim.city import City
    from sim.incidents import IncidentLog
    from sim.patrols import DayVisits
    from sim.scenario import Scenario


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
    on_spot_hours: np.ndarray  # (n_grids,) grid workers' hours spent on today's on-the-spot fixes
    reporters: np.ndarray      # residents who made today's first reports (one entry per report)


class Channels:
    """Every reporting channel of the city (see the module docstring).

    Args:
        config: the scenario (``channels``, ``fusion``, ``police`` sections are read).
        city: the lattice (cell populations, grids).
        cat: per-category parameters as arrays.
        residents: the resident population (reporting propensity, app users, who reports).
    """

    def __init__(self, config: Scenario, city: City, cat: CategoryArrays,
                 residents: ResidentPopulation):
        self.config = config
        self.city = city
        self.cat = cat
        self.residents = residents
        # people with the phone app per cell (residents stand for ``scale`` people each)
        self.app_people_per_cell = (
            np.bincount(residents.home, weights=residents.app_user, minlength=city.n_cells)
            * residents.scale
        )

    def victim_propensity(self, victim: np.ndarray, day: int) -> np.ndarray:
        """Hotline propensity of specific residents (victims; 1 where there is none)."""
        out = np.ones(len(victim))
        ok = victim >= 0
        out[ok] = self.residents.propensity_of(victim[ok], day)
        return out

    def discover(self, day: int, log: IncidentLog, visits: DayVisits,
                 cell_propensity: np.ndarray, rng: np.random.Generator) -> Detections:
        """Find open incidents through every enabled channel.

        Args:
            day: the model day (detections fall inside ``[day, day + 1)``).
            log: the incident log; discovered incidents get their state, times, first
                channel and reporter, lapsed ones their lapse, on-the-spot fixes their closure.
            visits: the day's visit counts per cell (:meth:`sim.patrols.Patrols.draw`).
            cell_propensity: (n_cells,) residents' mean hotline propensity per cell.
            rng: the day's ``reporting`` stream.

        Returns:
            What was found, by whom and at what cost (:class:`Detections`).
        """
        return _discover(self, day, log, visits, cell_propensity, rng)


def _discover(
    chans: Channels, day: int, log: IncidentLog, visits: DayVisits, prop_cell: np.ndarray,
    rng: np.random.Generator,
) -> Detections:
    cfg = chans.config
    ch = cfg.channels
    cp: CategoryArrays = chans.cat
    res = chans.residents
    city = chans.city
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
                         reports_by_channel, first_by_channel, 0, 0, int(lapse.sum()),
                         np.zeros(city.n_grids), np.zeros(0, np.int32))
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
    if ch.hotline.enabled:
        today_new = (~latent) & (t_occ >= day) & (st == UNDISCOVERED)
        vic = log.victim[ids]
        vprop = np.where(vic >= 0, chans.victim_propensity(vic, day), prop_cell[cell])
        p[:, CH["hotline"]] = np.where(today_new, np.minimum(1.0, cp.victim_report_prob[cat] * vprop), 0.0)
        lat_h = cp.public_report_hazard[cat] * city.population[cell] / 100.0 * prop_cell[cell]
        p[:, CH["hotline"]] = np.where(latent, 1.0 - np.exp(-lat_h * frac), p[:, CH["hotline"]])
    p_rider = p_vol = np.zeros(m)
    if ch.snap_report.enabled:
        sr = ch.snap_report
        app_people = chans.app_people_per_cell[cell]
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

    # On-the-spot fixes by the grid worker who found it (or the screening team).
    by_worker = (f == CH["grid_patrol"]) | (f == CH["joint_screening"])
    fix = by_worker & (rng.random(len(new_ids)) < cp.on_spot_fix_prob[log.category[new_ids]])
    fixed_ids = new_ids[fix]
    on_spot_hours = np.zeros(city.n_grids)
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
        on_spot_hours = np.bincount(g, weights=hours, minlength=city.n_grids)

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
        on_spot_hours=on_spot_hours,
        reporters=rr,
    )
