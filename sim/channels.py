"""Channels: how the system learns of an incident (DESIGN.md section 5).

:class:`Channels` turns the day's visit counts (:class:`~sim.patrols.DayVisits`, drawn by
:mod:`sim.patrols`) and residents' reporting propensity into noticings and reports of open
incidents, channel by channel:

  ``hotline``          victims (non-latent, at occurrence) and neighbours (latent, a daily
                       noticing hazard per 100 residents) who call if their propensity (trust,
                       feedback, party membership) says so;
  ``snap_report``      the phone app: app-using residents (who upload by propensity), riders
                       and community volunteers passing latent problems;
  ``grid_patrol``      grid workers' visits (they may fix small problems on the spot);
  ``police_patrol``    officers' and volunteer police visits;
  ``joint_screening``  with fusion, every grid is screened jointly every ``interval_days``;
  ``drone``            optional overflights that find environment problems;
  ``deliberation``     residents' meetings, each community every ``interval_days``: residents
                       raise the problems they know of together, many are settled on the spot.

**Noticing is not recording.** Someone who notices a problem reports it only if they decide
to: staff (grid workers, officers, screening teams, drone operators) record a problem they
notice with probability ``1 / (1 + h / paperwork.record_tolerance_hours)``, ``h`` the hours of
paperwork a report costs (``report_hours_per_form x forms``); residents report with their
propensity. Each noticing is one decision: a problem noticed but not recorded has its first
noticing time (``t_discovered``) but stays undiscovered to the system, may be noticed again
and recorded later, and a non-latent one lapses at the end of its report window as before.
One uniform per incident and channel decides both (noticed if ``u < p_notice``, recorded if
``u < p_record <= p_notice``), so a change in paperwork or propensity changes who records, not
who notices (common random numbers).

A noticing by a channel within a visit happens at a uniform time in the part of the day after
the incident occurred; the report follows after an exponential latency. Several channels may
record one incident: the first is its report, the others are duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.codes import Category, Handler
from sim.incidents import CH, KNOWN, LAPSED, PAPER_CLOSED, RESOLVED, UNDISCOVERED, CategoryArrays

if TYPE_CHECKING:
    from sim.agents import ResidentPopulation
    from sim.city import City
    from sim.incidents import IncidentLog
    from sim.patrols import DayVisits
    from sim.scenario import PaperworkConfig, Scenario

#: Channels before this code find problems continuously (a chance per incident and day);
#: deliberation meetings, the last code, are events and are handled apart.
N_DAILY = CH["deliberation"]
DELIB = CH["deliberation"]


def record_prob(paperwork: PaperworkConfig) -> float:
    """Probability that a staff member records a problem they notice (one noticing)::

        p = 1 / (1 + h / record_tolerance_hours),   h = report_hours_per_form x forms

    ``h`` is the paperwork one report costs, hours; ``p`` = 1 without paperwork and 1/2 when it
    equals the tolerance.
    """
    h = paperwork.report_hours_per_form * paperwork.forms
    return 1.0 / (1.0 + h / paperwork.record_tolerance_hours)


# --------------------------------------------------------------------------- discovery
@dataclass
class Detections:
    """Outcome of one day's discovery pass."""

    new_ids: np.ndarray       # newly recorded incidents now KNOWN (go to triage)
    new_report_t: np.ndarray  # their first report times
    reopened_ids: np.ndarray  # paper-closed problems reported again (to reopen)
    reopened_t: np.ndarray
    on_spot_ids: np.ndarray   # recorded today and fixed on the spot by the grid worker
    reports_by_channel: np.ndarray  # (n_channels,) all reports today, duplicates included
    first_by_channel: np.ndarray    # (n_channels,) first reports today (newly recorded)
    rider_reports: int
    volunteer_reports: int
    lapsed: int
    on_spot_hours: np.ndarray  # (n_grids,) grid workers' hours spent on today's on-the-spot fixes
    reporters: np.ndarray      # residents who made today's first reports (one entry per report)
    #: incidents noticed for the first time today by anyone (recorded or not)
    noticed: int = 0
    #: deliberation meetings held today, problems raised at them (follow-ups of cases in hand
    #: included) and problems settled there on the spot
    meetings: int = 0
    raised: int = 0
    settled_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class Channels:
    """Every reporting channel of the city (see the module docstring).

    Args:
        config: the scenario (``channels``, ``fusion``, ``police``, ``paperwork`` are read).
        city: the lattice (cell populations, grids, communities).
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
        self.p_record_staff = record_prob(config.paperwork)

    def victim_propensity(self, victim: np.ndarray, day: int) -> np.ndarray:
        """Hotline propensity of specific residents (victims; 1 where there is none)."""
        out = np.ones(len(victim))
        ok = victim >= 0
        out[ok] = self.residents.propensity_of(victim[ok], day)
        return out

    def meetings(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Communities holding a deliberation meeting on ``day`` and the meeting times.

        Community ``c`` meets at ``phase_c + k x interval_days`` (``k = 0, 1, ...``), with
        ``phase_c = interval_days x c / n_communities``: the meetings are spread evenly over
        each interval, ``365 / interval_days`` a year per community.
        """
        dc = self.config.channels.deliberation
        n = self.city.n_communities
        if not dc.enabled or n == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        iv = dc.interval_days
        phase = iv * np.arange(n) / n
        t = phase + np.maximum(0.0, np.ceil((day - phase) / iv)) * iv
        meets = t < day + 1.0
        return np.flatnonzero(meets), t[meets]

    def discover(self, day: int, log: IncidentLog, visits: DayVisits,
                 cell_propensity: np.ndarray, rng: np.random.Generator) -> Detections:
        """Find open incidents through every enabled channel.

        Args:
            day: the model day (noticings fall inside ``[day, day + 1)``).
            log: the incident log; noticed incidents get their first noticing time, recorded
                ones their state, report time, first channel and reporter, lapsed ones their
                lapse, on-the-spot fixes and settled ones their closure.
            visits: the day's visit counts per cell (:meth:`sim.patrols.Patrols.draw`).
            cell_propensity: (n_cells,) residents' mean hotline propensity per cell.
            rng: the day's ``reporting`` stream. Deliberation meetings draw from a stream
                spawned from it, so switching them on leaves every other channel's draws as
                they were.

        Returns:
            What was noticed, recorded and settled, by whom and at what cost
            (:class:`Detections`).
        """
        rng_delib = rng.spawn(1)[0]
        det = _discover(self, day, log, visits, cell_propensity, rng)
        return _deliberate(self, day, log, det, rng_delib)


def _empty(n_grids: int, lapsed: int) -> Detections:
    e = np.zeros(0, np.int64)
    return Detections(e, np.zeros(0), e, np.zeros(0), e, np.zeros(len(CH), np.int64),
                      np.zeros(len(CH), np.int64), 0, 0, lapsed, np.zeros(n_grids),
                      np.zeros(0, np.int32))


def _discover(
    chans: Channels, day: int, log: IncidentLog, visits: DayVisits, prop_cell: np.ndarray,
    rng: np.random.Generator,
) -> Detections:
    cfg = chans.config
    ch = cfg.channels
    cp: CategoryArrays = chans.cat
    res = chans.residents
    city = chans.city
    n_ch = N_DAILY

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
    n_lapsed = int(lapse.sum())
    keep = ~lapse
    ids, st, cat, t_occ = ids[keep], st[keep], cat[keep], t_occ[keep]
    # Problems known and in hand are not re-detected by patrols (the system already has them);
    # undiscovered ones, and paper-closed latent problems that persist, are.
    latent = cp.latent[cat]
    cand = (st == UNDISCOVERED) | ((st == PAPER_CLOSED) & latent)
    ids, st, cat, t_occ, latent = ids[cand], st[cand], cat[cand], t_occ[cand], latent[cand]
    m = len(ids)
    if m == 0:
        return _empty(city.n_grids, n_lapsed)
    cell = log.cell[ids]
    start = np.maximum(t_occ, day)
    # exposed part of today: from occurrence (or midnight) to the end of the day, or for a
    # non-latent incident to the end of its report window if that comes first
    stop = np.where(latent, day + 1.0, np.minimum(day + 1.0, t_occ + cp.report_window_days[cat]))
    frac = np.clip(stop - start, 0.0, 1.0)
    vis = cp.visibility[cat]
    q = cp.patrol_detect_prob[cat]
    p_staff = chans.p_record_staff

    # pn: chance that someone in the channel notices the problem today; pr (<= pn): that
    # someone notices and reports it. Repeated noticings (visits, people) are independent
    # decisions, so pr thins the noticing process rather than multiplying pn.
    pn = np.zeros((m, n_ch))
    pr = np.zeros((m, n_ch))
    if ch.hotline.enabled:
        hl = CH["hotline"]
        # victims know at once (non-latent, occurred today) and call by their propensity
        today_new = (~latent) & (t_occ >= day) & (st == UNDISCOVERED)
        vic = log.victim[ids]
        vprop = np.where(vic >= 0, chans.victim_propensity(vic, day), prop_cell[cell])
        pn[:, hl] = today_new
        pr[:, hl] = np.where(today_new, np.minimum(1.0, cp.victim_report_prob[cat] * vprop), 0.0)
        # neighbours of latent problems notice at a hazard per 100 residents of the cell and
        # call with probability min(1, report_share x propensity): at propensity 1 the
        # calling hazard is public_report_hazard, as before the split
        share = ch.hotline.report_share
        lam = cp.public_report_hazard[cat] * city.population[cell] / 100.0 / share * frac
        call = np.minimum(1.0, share * prop_cell[cell])
        pn[:, hl] = np.where(latent, -np.expm1(-lam), pn[:, hl])
        pr[:, hl] = np.where(latent, -np.expm1(-lam * call), pr[:, hl])
    p_rider = p_vol = np.zeros(m)
    if ch.snap_report.enabled:
        sr = ch.snap_report
        app_people = chans.app_people_per_cell[cell] * frac
        n1 = np.minimum(1.0, sr.resident_hazard * vis / sr.report_share)
        up = np.minimum(1.0, sr.report_share * prop_cell[cell])
        pn_res = -np.expm1(app_people * np.log1p(-np.minimum(n1, 1.0 - 1e-12)))
        pr_res = -np.expm1(app_people * np.log1p(-np.minimum(n1 * up, 1.0 - 1e-12)))
        # riders and volunteers are enlisted to report: they upload all they notice
        p_rider = 1.0 - np.power(1.0 - sr.rider_detect_prob * vis, visits.rider[cell] * frac)
        p_vol = 1.0 - np.power(1.0 - sr.volunteer_detect_prob * vis, visits.volunteer[cell] * frac)
        others = (1.0 - p_rider) * (1.0 - p_vol)
        pn[:, CH["snap_report"]] = np.where(latent, 1.0 - (1.0 - pn_res) * others, 0.0)
        pr[:, CH["snap_report"]] = np.where(latent, 1.0 - (1.0 - pr_res) * others, 0.0)
    if ch.grid_patrol.enabled:
        pn[:, CH["grid_patrol"]] = 1.0 - np.power(1.0 - q * frac, visits.worker[cell])
        pr[:, CH["grid_patrol"]] = 1.0 - np.power(1.0 - q * frac * p_staff, visits.worker[cell])
    if ch.police_patrol.enabled:
        attention = cfg.fusion.police_grid_attention if cfg.fusion.enabled else cfg.police.grid_matter_attention
        police_matter = (cat == Category.PUBLIC_SAFETY) | (cat == Category.DISPUTE)
        qp = q * np.where(police_matter, 1.0, attention)
        pn[:, CH["police_patrol"]] = 1.0 - np.power(1.0 - qp * frac, visits.police[cell])
        pr[:, CH["police_patrol"]] = 1.0 - np.power(1.0 - qp * frac * p_staff, visits.police[cell])
    if cfg.fusion.enabled and ch.joint_screening.enabled:
        js = CH["joint_screening"]
        pn[:, js] = np.where(visits.screened[cell] & latent, ch.joint_screening.detect_prob * frac, 0.0)
        pr[:, js] = pn[:, js] * p_staff
    if ch.drone.enabled:
        dr = CH["drone"]
        env = cat == Category.ENVIRONMENT
        pn[:, dr] = np.where(visits.drone[cell] & env, ch.drone.detect_prob * frac, 0.0)
        pr[:, dr] = pn[:, dr] * p_staff

    u = rng.random((m, n_ch))
    noticed = u < pn
    hit = noticed & (u < pr)
    any_seen = noticed.any(axis=1)
    if not any_seen.any():
        return _empty(city.n_grids, n_lapsed)
    # noticing and report times per channel
    t_det = start[:, None] + rng.random((m, n_ch)) * np.maximum(stop - start, 0.0)[:, None]
    # victims know and call right after the incident
    t_det[:, CH["hotline"]] = np.where(~latent, t_occ, t_det[:, CH["hotline"]])
    lat_h = np.array([getattr(ch, name).latency_hours for name in list(CH)[:n_ch]])
    t_rep = t_det + rng.exponential(1.0, (m, n_ch)) * (lat_h / 24.0)[None, :]

    # first noticing: kept from an earlier day if there was one
    seen = np.flatnonzero(any_seen)
    first_seen = np.where(noticed[seen], t_det[seen], np.inf).min(axis=1)
    new_seen = np.isnan(log.t_discovered[ids[seen]])
    log.t_discovered[ids[seen[new_seen]]] = first_seen[new_seen]
    n_noticed = int(new_seen.sum())

    reports_by_channel = np.zeros(len(CH), dtype=np.int64)
    first_by_channel = np.zeros(len(CH), dtype=np.int64)
    any_hit = hit.any(axis=1)
    sel = np.flatnonzero(any_hit)
    if len(sel) == 0:
        out = _empty(city.n_grids, n_lapsed)
        out.noticed = n_noticed
        return out
    t_hit = np.where(hit[sel], t_det[sel], np.inf)
    first = np.argmin(t_hit, axis=1)
    hid = ids[sel]
    log.reports[hid, :n_ch] += hit[sel].astype(np.int16)
    reports_by_channel[:n_ch] += hit[sel].sum(axis=0)
    # attribute snap reports to riders / volunteers / residents in proportion to their chances
    snap_hit = hit[sel, CH["snap_report"]]
    rider_reports = volunteer_reports = 0
    if ch.snap_report.enabled and snap_hit.any():
        ps = pr[sel, CH["snap_report"]]
        with np.errstate(invalid="ignore", divide="ignore"):
            share_r = np.where(ps > 0, p_rider[sel] / ps, 0)
            share_v = np.where(ps > 0, p_vol[sel] / ps, 0)
        who = rng.random(len(sel))
        rider_reports = int((snap_hit & (who < share_r)).sum())
        volunteer_reports = int((snap_hit & (who >= share_r) & (who < share_r + share_v)).sum())

    is_new = st[sel] == UNDISCOVERED
    new_sel = np.flatnonzero(is_new)
    new_ids = hid[new_sel]
    f = first[new_sel]
    t_first_rep = t_rep[sel[new_sel], f]
    log.state[new_ids] = KNOWN
    log.t_reported[new_ids] = t_first_rep
    log.first_channel[new_ids] = f
    first_by_channel[:n_ch] += np.bincount(f, minlength=n_ch)
    # reporter: the victim when the victim called, else a resident of the cell for the
    # resident channels (hotline, snap); staff channels have no resident reporter.
    resident_ch = (f == CH["hotline"]) | (f == CH["snap_report"])
    vic = log.victim[new_ids]
    rnd_res = res.random_in_cells(log.cell[new_ids], rng.random(len(new_ids)))
    reporter = np.where(resident_ch, np.where((f == CH["hotline"]) & (vic >= 0), vic, rnd_res), -1)
    log.reporter[new_ids] = reporter
    rr = reporter[reporter >= 0]

    # On-the-spot fixes by the grid worker who recorded it (or the screening team).
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

    # Paper-closed problems reported again by anyone: reopened.
    reo = np.flatnonzero(~is_new)
    reo_ids = hid[reo]
    reo_t = t_rep[sel[reo], first[reo]]

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
        lapsed=n_lapsed,
        on_spot_hours=on_spot_hours,
        reporters=rr,
        noticed=n_noticed,
    )


# --------------------------------------------------------------------------- deliberation
def _deliberate(chans: Channels, day: int, log: IncidentLog, det: Detections,
                rng: np.random.Generator) -> Detections:
    """Today's deliberation meetings, after the daily channels (adds to ``det``).

    At a meeting of community ``c`` at time ``t_m``, residents know of the open problems in
    its cells that occurred before ``t_m``: undiscovered non-latent ones still inside their
    report window (the victim knows), undiscovered and paper-closed latent ones with
    probability ``visibility`` (drawn per problem and meeting), and the cases an office holds
    (known). They raise up to ``requests_per_meeting`` of them, the most severe first. A raised
    problem that no office holds is settled on the spot with probability ``settle_prob``
    (resolved and closed at the report time; handler ``on_spot`` for one the system had not
    recorded); otherwise an undiscovered one is
    recorded and goes to triage, a paper-closed one is reopened. Raising a case in hand is a
    follow-up: a (duplicate) report, nothing else.
    """
    comm, t_meet = chans.meetings(day)
    if len(comm) == 0:
        return det
    dc = chans.config.channels.deliberation
    cp = chans.cat
    city = chans.city
    det.meetings = len(comm)
    when = np.full(city.n_communities, np.nan)
    when[comm] = t_meet
    ids = log.open_ids()
    t_m = when[city.community[log.cell[ids]]]
    ids, t_m = ids[t_m > log.t_occurred[ids]], t_m[t_m > log.t_occurred[ids]]  # NaN: no meeting
    if len(ids) == 0 or dc.requests_per_meeting == 0:
        return det
    st = log.state[ids]
    cat = log.category[ids]
    latent = cp.latent[cat]
    # problems already reported again today by another channel are in hand (being reopened)
    in_hand = (st == KNOWN) | np.isin(ids, det.reopened_ids)
    inside = log.t_occurred[ids] + cp.report_window_days[cat] > t_m
    seen = rng.random(len(ids)) < cp.visibility[cat]
    known = in_hand | ((st == UNDISCOVERED) & ~latent & inside) | (
        ((st == UNDISCOVERED) | (st == PAPER_CLOSED)) & latent & seen)
    ids, t_m, st, in_hand = ids[known], t_m[known], st[known], in_hand[known]
    if len(ids) == 0:
        return det
    # the most severe first within each community (ties by id)
    comm_of = city.community[log.cell[ids]]
    order = np.lexsort((ids, -log.severity[ids].astype(np.float64), comm_of))
    comm_sorted = comm_of[order]
    group_start = np.searchsorted(comm_sorted, comm_sorted, side="left")
    rank = np.arange(len(order)) - group_start
    raised = order[rank < dc.requests_per_meeting]
    ids, t_m, st, in_hand = ids[raised], t_m[raised], st[raised], in_hand[raised]
    n = len(ids)
    det.raised = n
    log.reports[ids, DELIB] += 1
    det.reports_by_channel[DELIB] += n
    t_r = t_m + rng.exponential(1.0, n) * dc.latency_hours / 24.0
    settle = ~in_hand & (rng.random(n) < dc.settle_prob)
    u_res = rng.random(n)

    # newly recorded: undiscovered problems raised
    new = ~in_hand & (st == UNDISCOVERED)
    nid = ids[new]
    fresh = np.isnan(log.t_discovered[nid])
    det.noticed += int(fresh.sum())
    log.t_discovered[nid] = np.fmin(log.t_discovered[nid], t_m[new])
    log.t_reported[nid] = t_r[new]
    log.first_channel[nid] = DELIB
    vic = log.victim[nid]
    reporter = np.where(vic >= 0, vic, chans.residents.random_in_cells(log.cell[nid], u_res[new]))
    log.reporter[nid] = reporter
    log.state[nid] = KNOWN
    det.first_by_channel[DELIB] += len(nid)
    det.reporters = np.concatenate([det.reporters, reporter[reporter >= 0]]).astype(np.int32)

    # settled on the spot (newly recorded or paper-closed): truly fixed at the meeting
    sid = ids[settle]
    log.state[sid] = RESOLVED
    log.t_resolved[sid] = t_r[settle]
    log.t_closed[sid] = t_r[settle]  # a paper closure is replaced by the real one, as on reopening
    fresh_settled = settle & new
    fs = ids[fresh_settled]
    log.route[fs] = Handler.ON_SPOT
    log.handler[fs] = Handler.ON_SPOT
    log.attempts[fs] = 1
    det.settled_ids = sid

    # the rest: new ones to triage, paper-closed ones reopened
    to_triage = new & ~settle
    det.new_ids = np.concatenate([det.new_ids, ids[to_triage]])
    det.new_report_t = np.concatenate([det.new_report_t, t_r[to_triage]])
    reo = ~in_hand & (st == PAPER_CLOSED) & ~settle
    det.reopened_ids = np.concatenate([det.reopened_ids, ids[reo]])
    det.reopened_t = np.concatenate([det.reopened_t, t_r[reo]])
    return det
