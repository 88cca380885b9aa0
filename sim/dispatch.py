"""Triage, routing, handling, escalation and feedback (DESIGN.md section 6).

One path for every report:

1. **Intake** (:meth:`Dispatcher.triage`): the intake centre triages a report after an
   exponential delay (mean ``handling.triage_delay_hours``, times ``fusion.triage_delay_factor``
   under police-grid fusion) and dispatches it at once to a handler.
2. **Routing** (:meth:`Dispatcher.route`): by category (``incidents.<cat>.route``: community,
   township, county, police or mediation) and, with the 三高 tiers on, by risk: a case whose
   severity reaches ``tiers.high_risk_severity`` goes to the city tier (high-risk), a complaint
   about a problem reported ``tiers.high_frequency_reports`` times or more (duplicates across
   channels and reporters) goes to the county tier (high-frequency); the rest go to their category's default (high-incidence
   problems to townships and communities). Police and mediation cases keep their route.
3. **Handling**: each handler is a pool of servers per administrative unit (community,
   township, county, the city; police per county; mediation rooms per township), a
   :class:`~sim.queueing.ServerPool` with a priority queue (more severe first). Pools are
   advanced to the model's clock at the end of each day; completions fall at fractional times.
4. **Outcome** of an attempt: truly resolved (probability ``success_prob`` x the tier's
   multiplier, + the fusion bonus for hazards and public safety), else closed on paper
   (``paper_close_prob``: officially closed, problem persists), else failed and escalated one
   tier up (community -> township -> county -> city; mediation -> township; police -> county);
   after ``handling.max_attempts`` or above the city tier the case is abandoned (failed).
5. **Reopening**: a paper-closed problem is reopened when its reporter complains (probability
   ``handling.reopen_prob`` after an exponential delay) or when any channel finds it again;
   the reopened case is triaged again and goes one tier up.
6. **Feedback**: with the closed loop on, the reporter hears the outcome: a fix raises trust
   and the reporter's future propensity (x ``feedback.report_boost``, fading); a failure or fake
   closure lowers trust. Without it, silence lowers trust a little.

Pools are advanced in the order mediation, community, police, township, county, city, so that
an escalation always goes to a pool not yet advanced today; reopenings are triaged before the
pools advance (complaints are lodged from the day after the closure), so no case can arrive in
a pool's past. ``Dispatcher.clamped`` counts any that would (it stays 0; tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.codes import CAT, HANDLER_POOLS, HD, Category, Feedback
from sim.incidents import (
    FAILED,
    KNOWN,
    PAPER_CLOSED,
    RESOLVED,
    CategoryArrays,
)
from sim.queueing import ServerPool

if TYPE_CHECKING:
    from sim.city import City
    from sim.incidents import IncidentLog
    from sim.scenario import Scenario

# Where a failed attempt goes next (None: nowhere, the case is abandoned).
NEXT_TIER = {
    "community": "township",
    "mediation": "township",
    "social_work": "township",
    "police": "county",
    "township": "county",
    "county": "city",
    "city": None,
}
ADVANCE_ORDER = HANDLER_POOLS


def draw_service_days(
    cat: np.ndarray, speed: np.ndarray, cp: CategoryArrays, rng: np.random.Generator
) -> np.ndarray:
    """Handling times (days) for attempts: lognormal with the category's mean and coefficient
    of variation, or exponential, divided by the handler's speed."""
    mean = cp.service_mean_days[cat] / speed
    cv = cp.service_cv[cat]
    sig2 = np.log1p(cv**2)
    logn = mean * np.exp(np.sqrt(sig2) * rng.standard_normal(len(cat)) - 0.5 * sig2)
    expo = mean * rng.exponential(1.0, len(cat))
    out = np.where(cp.exponential[cat], expo, logn)
    return np.maximum(out, 1e-6)


@dataclass
class FeedbackEvents:
    """Reporters told the outcome of their cases today (one entry per case).

    ``reporters[i]`` reported a case that was truly fixed when ``fixed[i]``; with the closed
    loop off (``closed_loop`` False) nobody was told anything (silence).
    """

    reporters: np.ndarray
    fixed: np.ndarray
    closed_loop: bool
    t: np.ndarray  # when the reporter hears it (or, with no closed loop, would have), days

    @classmethod
    def none(cls, closed_loop: bool) -> FeedbackEvents:
        return cls(np.zeros(0, np.int32), np.zeros(0, bool), closed_loop, np.zeros(0))

    def take(self, mask: np.ndarray) -> FeedbackEvents:
        return FeedbackEvents(self.reporters[mask], self.fixed[mask], self.closed_loop, self.t[mask])

    def __add__(self, other: FeedbackEvents) -> FeedbackEvents:
        return FeedbackEvents(np.concatenate([self.reporters, other.reporters]),
                              np.concatenate([self.fixed, other.fixed]), self.closed_loop,
                              np.concatenate([self.t, other.t]))


@dataclass
class DayHandling:
    """What the handler pools did in one day: counts and times in ``stats`` (attempts,
    resolved, paper_closed, escalated, failed, mediation_done, mediation_success, wait_sum,
    started, busy_<pool>, cap_<pool>) and the reporters to tell."""

    stats: dict[str, float]
    feedback: FeedbackEvents


class Dispatcher:
    """The intake centre and every handler pool of the city.

    Args:
        config: the scenario (``handling``, ``tiers``, ``fusion``, ``police``, ``volunteers``,
            ``population``, ``feedback`` sections are read).
        city: the lattice and its administrative units (one pool per unit and handler).
        cat: per-category parameters as arrays.
        log: the incident log whose cases are routed, handled and closed.
        party_share_rel: (n_cells,) share of party-member households per cell relative to the
            city's (capped), which helps mediation.
        response_travel_days: (n_cells,) police travel time to a scene in each cell, days.
    """

    def __init__(self, config: Scenario, city: City, cat: CategoryArrays, log: IncidentLog,
                 party_share_rel: np.ndarray, response_travel_days: np.ndarray):
        self.config = config
        self.cat = cat
        self.log = log
        self.response_travel_days = response_travel_days
        self.party_share_rel = party_share_rel
        cfg = config
        h = cfg.handling
        units = {
            "community": city.n_communities,
            "township": city.n_townships,
            "county": city.n_counties,
            "city": 1,
            "police": city.n_counties,
            "mediation": city.n_townships,
            "social_work": city.n_townships,  # township social-work stations (社工站)
        }
        # unit of each cell for each handler
        self.unit_of_cell = {
            "community": city.community,
            "township": city.township,
            "county": city.county,
            "city": np.zeros(city.n_cells, dtype=np.int32),
            "police": city.county,
            "mediation": city.township,
            "social_work": city.township,
        }
        # Staffing follows caseload: capacity is set per 10,000 risk-weighted residents
        # (population x background risk, whose population-weighted mean is 1), the way a
        # planner staffs offices by their expected case volume; or, where a tier's absolute
        # staff is given, that staff is spread over its units by the same weights.
        load = city.population * city.risk
        unit_pop = {
            name: np.bincount(self.unit_of_cell[name], weights=load, minlength=units[name])
            for name in ADVANCE_ORDER
        }
        officers_per_county = _alloc(cfg.police.officers, unit_pop["county"])
        vpolice_per_township = _alloc(cfg.volunteers.volunteer_police, unit_pop["township"])
        sw = h.social_work
        social_per_township = _alloc(sw.workers * sw.cases_per_worker if sw.enabled else 0,
                                     unit_pop["social_work"])
        staff_per_unit = {
            name: _alloc(getattr(h, name).staff, unit_pop[name])
            for name in ("community", "township", "county", "city", "mediation")
            if getattr(h, name).staff is not None
        }
        self.pools: list[ServerPool] = []
        self.pool_offset: dict[str, int] = {}
        self.pool_handler: list[str] = []
        for name in ADVANCE_ORDER:
            self.pool_offset[name] = len(self.pools)
            for u in range(units[name]):
                per10k = unit_pop[name][u] / 10_000.0
                if name == "police":
                    servers = officers_per_county[u] * cfg.police.response_servers_per_officer
                elif name == "social_work":
                    servers = social_per_township[u]
                elif name in staff_per_unit:
                    servers = staff_per_unit[name][u]
                else:
                    servers = getattr(h, name).servers_per_10k * per10k
                if name == "mediation":
                    servers += vpolice_per_township[u] * cfg.volunteers.mediation_servers_per_100_vpolice / 100
                # Fractional capacities round to the nearest whole server, at least one where
                # any capacity was configured.
                n = int(round(servers))
                if servers > 0:
                    n = max(1, n)
                self.pools.append(ServerPool(f"{name}[{u}]", n))
                self.pool_handler.append(name)
        self.speed = np.ones(len(HD))
        self.success_mult = np.ones(len(HD))
        for name in ("community", "township", "county", "city", "mediation"):
            hc = getattr(h, name)
            self.speed[HD[name]] = hc.speed
            self.success_mult[HD[name]] = hc.success_multiplier
        self.speed[HD["police"]] = h.police_speed
        self.success_mult[HD["police"]] = h.police_success_multiplier
        self.speed[HD["social_work"]] = sw.speed
        self.success_mult[HD["social_work"]] = sw.success_multiplier
        # Routes: welfare cases go to social workers where they exist; a route to social work
        # without them falls back to the community tier.
        self.route_of_cat = cat.route.astype(np.int64).copy()
        if sw.enabled:
            welfare = np.arange(len(self.route_of_cat)) == Category.WELFARE
            self.route_of_cat[welfare] = HD["social_work"]
        elif (self.route_of_cat == HD["social_work"]).any():
            self.route_of_cat[self.route_of_cat == HD["social_work"]] = HD["community"]
        # Hand-offs between the police and the grid offices (no shared intake before fusion).
        self.handoffs_on = not cfg.fusion.enabled
        # Extra days a community-tier case waits for its grid's overloaded workers (see
        # set_overload); 0 everywhere until the model says otherwise.
        self.grid_of_cell = city.grid
        self.overload_delay_grid = np.zeros(city.n_grids)
        # dropped hand-offs waiting for someone to chase them: (id, time)
        self.pending_chase_ids = np.zeros(0, dtype=np.int64)
        self.pending_chase_t = np.zeros(0)
        # reopening complaints waiting for their time: (id, time)
        self.pending_reopen_ids = np.zeros(0, dtype=np.int64)
        self.pending_reopen_t = np.zeros(0)
        self.pending_reopen_closed = np.zeros(0)
        self.clamped = 0
        self.pool_range = {name: (self.pool_offset[name], self.pool_offset[name] + units[name])
                           for name in ADVANCE_ORDER}

    # ------------------------------------------------------------------ routing
    def pool_index(self, handler: str, cells: np.ndarray) -> np.ndarray:
        return self.pool_offset[handler] + self.unit_of_cell[handler][cells].astype(np.int64)

    def route(self, ids: np.ndarray, reopened: np.ndarray) -> np.ndarray:
        """Handler code for each case (see the module docstring)."""
        cfg = self.config
        log = self.log
        cp = self.cat
        cat = log.category[ids]
        base = self.route_of_cat[cat]
        out = base.copy()
        if cfg.tiers.enabled:
            tiered = np.isin(base, [HD["community"], HD["township"], HD["county"]])
            freq = log.reports[ids].sum(axis=1) >= cfg.tiers.high_frequency_reports
            high_risk = log.severity[ids] >= cfg.tiers.high_risk_severity
            out = np.where(tiered & freq, HD["county"], out)
            out = np.where(tiered & high_risk, HD["city"], out)
        # A reopened case goes one tier above the handler that closed it.
        if reopened.any():
            last = log.handler[ids]
            for j in np.flatnonzero(reopened & (last >= 0)):
                nxt = NEXT_TIER.get(_HANDLER_NAME[last[j]])
                out[j] = HD[nxt] if nxt else last[j]
        return out

    def triage(self, ids: np.ndarray, t_report: np.ndarray, reopened: np.ndarray,
               rng: np.random.Generator, rng_handoff: np.random.Generator | None = None) -> None:
        """Triage and dispatch reports (times are report times; may fall late in the day).

        Args:
            ids: cases to triage.
            t_report: their report (or complaint) times, days.
            reopened: which of them are reopened cases (they go a tier up).
            rng: the day's ``triage`` stream (triage delays, handling times).
            rng_handoff: the day's ``handoff`` stream for the hand-offs between offices
                before fusion (its own stream, so that switching fusion on or off leaves every
                other draw of the day as it was); None uses ``rng``.
        """
        if len(ids) == 0:
            return
        cfg = self.config
        log = self.log
        mean_h = cfg.handling.triage_delay_hours * (
            cfg.fusion.triage_delay_factor if cfg.fusion.enabled else 1.0
        )
        t_tri = t_report + rng.exponential(1.0, len(ids)) * mean_h / 24.0
        handler = self.route(ids, reopened)
        first_time = np.isnan(log.t_triaged[ids])
        log.t_triaged[ids] = np.where(first_time, t_tri, log.t_triaged[ids])
        t_disp, dropped = self._handoffs(ids, t_tri, rng if rng_handoff is None else rng_handoff)
        log.t_dispatched[ids] = np.where(first_time, t_disp, log.t_dispatched[ids])
        log.route[ids] = np.where(first_time, handler, log.route[ids])
        go = ~dropped
        self._submit(ids[go], handler[go].astype(np.int8), t_disp[go], rng)

    def _handoffs(self, ids: np.ndarray, t_tri: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Hand-offs between the police and the grid offices for cases that need both, when
        there is no shared intake (before fusion): each case is passed 1 + B times, B ~
        Geometric (bounced back with ``bounce_prob`` each time), each pass taking an
        exponential delay (mean ``delay_hours``) and losing the case with ``drop_prob``.

        Returns:
            (dispatch times, dropped mask). A dropped case is chased again by whoever
            reported it with ``handling.reopen_prob``, after an exponential delay (mean
            ``handling.reopen_delay_days``), and triaged anew; otherwise it stays open and
            unhandled (it counts against closure).
        """
        n = len(ids)
        joint = self.cat.joint[self.log.category[ids]] if self.handoffs_on else np.zeros(n, bool)
        if not joint.any():
            return t_tri, np.zeros(n, bool)
        ho = self.config.handling.handoff
        h = self.config.handling
        k = int(joint.sum())
        passes = rng.geometric(1.0 - ho.bounce_prob, k)  # 1 + bounces, >= 1
        delay = rng.gamma(passes, ho.delay_hours / 24.0) if ho.delay_hours > 0 else np.zeros(k)
        lost = rng.random(k) >= np.power(1.0 - ho.drop_prob, passes)
        chase = rng.random(k) < h.reopen_prob
        # chased from the day after the hand-off at the earliest (as complaints are)
        chase_t = np.maximum(t_tri[joint] + delay + rng.exponential(h.reopen_delay_days, k),
                             np.floor(t_tri[joint]) + 1.0)
        t_disp = t_tri.copy()
        t_disp[joint] = t_tri[joint] + delay
        dropped = np.zeros(n, bool)
        dropped[joint] = lost
        jids = ids[joint]
        self.log.handoffs[jids] = np.minimum(self.log.handoffs[jids].astype(np.int64) + passes, 127)
        again = lost & chase
        self.pending_chase_ids = np.concatenate([self.pending_chase_ids, jids[again]])
        self.pending_chase_t = np.concatenate([self.pending_chase_t, chase_t[again]])
        return t_disp, dropped

    def due_chases(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        """Cases lost in a hand-off whose reporter chases them before ``until``."""
        due = self.pending_chase_t < until
        ids, t = self.pending_chase_ids[due], self.pending_chase_t[due]
        self.pending_chase_ids = self.pending_chase_ids[~due]
        self.pending_chase_t = self.pending_chase_t[~due]
        still = self.log.state[ids] == KNOWN
        order = np.argsort(t[still], kind="stable")
        return ids[still][order], t[still][order]

    def set_overload(self, delay_days_grid: np.ndarray) -> None:
        """Community-tier cases in grid ``g`` take ``delay_days_grid[g]`` days longer: the
        grid's workers have more case work waiting than hours free for it
        (:meth:`sim.patrols.Patrols.plan_workers`)."""
        self.overload_delay_grid = delay_days_grid

    def _submit(self, ids: np.ndarray, handler: np.ndarray, t_arr: np.ndarray,
                rng: np.random.Generator) -> None:
        log = self.log
        cat = log.category[ids]
        service = draw_service_days(cat, self.speed[handler], self.cat, rng)
        cells = log.cell[ids]
        # overloaded grid workers get to their community cases later
        comm = handler == HD["community"]
        if comm.any():
            service[comm] += self.overload_delay_grid[self.grid_of_cell[cells[comm]]]
        # police attend in person: the officer's travel to the scene is part of the handling
        police = handler == HD["police"]
        if police.any():
            service[police] += self.response_travel_days[cells[police]]
        prio = -log.severity[ids].astype(np.float64)
        log.handler[ids] = handler
        pool_idx = np.empty(len(ids), dtype=np.int64)
        for hname in np.unique(handler):
            sel = handler == hname
            pool_idx[sel] = self.pool_index(_HANDLER_NAME[hname], cells[sel])
        log.pool[ids] = pool_idx
        pools = self.pools
        for i, p, t, s, pr in zip(ids.tolist(), pool_idx.tolist(), t_arr.tolist(),
                                  service.tolist(), prio.tolist(), strict=True):
            pool = pools[p]
            if t < pool.now:
                t = pool.now
                self.clamped += 1
            pool.submit(i, t, s, pr)

    # ------------------------------------------------------------------ daily advance
    def advance(self, until: float, rng_outcome: np.random.Generator,
                rng_service: np.random.Generator) -> DayHandling:
        """Advance every pool to ``until`` and settle the outcomes of finished attempts.

        Returns:
            The day's counts and the reporters to tell (closed, paper-closed and abandoned
            cases; their feedback times and kinds are written to the log).
        """
        cfg = self.config
        log = self.log
        cp = self.cat
        stats = {"attempts": 0, "resolved": 0, "paper_closed": 0, "escalated": 0, "failed": 0,
                 "explained": 0,
                 "mediation_done": 0, "mediation_success": 0, "wait_sum": 0.0, "started": 0}
        closed_ids: list[np.ndarray] = []
        for hname in ADVANCE_ORDER:
            lo, hi = self.pool_range[hname]
            done: list = []
            busy = cap = wait = 0.0
            started = 0
            for pool in self.pools[lo:hi]:
                comps = pool.advance(until)
                if comps:
                    done.extend(comps)
                st = pool.take_daily_stats()
                wait += st["wait_sum"]
                started += st["starts"]
                busy += st["busy_time"]
                cap += st["capacity_time"]
            stats["wait_sum"] += wait
            stats["started"] += started
            stats[f"busy_{hname}"] = busy
            stats[f"cap_{hname}"] = cap
            if not done:
                continue
            arr = np.array(done, dtype=np.float64)  # (incident_id, arrival, start, end)
            ids = arr[:, 0].astype(np.int64)
            start = arr[:, 2]
            end = arr[:, 3]
            log.t_started[ids] = start
            log.t_ended[ids] = end
            log.attempts[ids] += 1
            cat = log.category[ids]
            hcode = HD[hname]
            ps = np.minimum(1.0, cp.success_prob[cat] * self.success_mult[hcode])
            if cfg.fusion.enabled:
                joint = (cat == CAT["hazard"]) | (cat == CAT["public_safety"])
                ps = np.minimum(1.0, ps + np.where(joint, cfg.fusion.joint_success_bonus, 0.0))
            if hname == "mediation" and cfg.population.party_mediation_bonus > 0:
                # centred on the city: the sourced success rate (Lianhua's 87%) holds on
                # average, cells with more party-member households mediate better
                ps = np.clip(ps + cfg.population.party_mediation_bonus
                             * (self.party_share_rel[log.cell[ids]] - 1.0), 0.0, 1.0)
            u = rng_outcome.random(len(ids))
            ok = u < ps
            paper = ~ok & (u < ps + (1 - ps) * cp.paper_close_prob[cat])
            fail = ~ok & ~paper
            # resolved
            r = ids[ok]
            log.state[r] = RESOLVED
            log.t_closed[r] = end[ok]
            log.t_resolved[r] = end[ok]
            # closed on paper: the problem persists; the reporter may complain later
            pc = ids[paper]
            log.state[pc] = PAPER_CLOSED
            log.t_closed[pc] = end[paper]
            self._complaints(pc, end[paper], rng_outcome)
            # failed: escalate a tier up (with handling.escalate_prob, while attempts remain),
            # else returned as unsolvable (abandoned: failed). The top tier has nobody above
            # it: it closes the case officially with an explanation (说明解释), the problem
            # persists, and only its reporter's complaint can reopen it.
            f = ids[fail]
            nxt = NEXT_TIER[hname]
            if nxt is None:
                log.state[f] = PAPER_CLOSED
                log.t_closed[f] = end[fail]
                self._complaints(f, end[fail], rng_outcome)
                stats["explained"] += len(f)
                esc = ab = f[:0]
            else:
                up = rng_outcome.random(len(f)) < cfg.handling.escalate_prob
                can = (log.attempts[f] < cfg.handling.max_attempts) & up
                esc = f[can]
                if len(esc):
                    log.escalations[esc] += 1
                    self._submit(esc, np.full(len(esc), HD[nxt], dtype=np.int8), end[fail][can], rng_service)
                ab = f[~can]
                log.state[ab] = FAILED
                log.t_failed[ab] = end[fail][~can]
            stats["attempts"] += len(ids)
            stats["resolved"] += int(ok.sum())
            stats["paper_closed"] += int(paper.sum())
            stats["escalated"] += len(esc)
            stats["failed"] += len(ab)
            if hname == "mediation":
                stats["mediation_done"] += len(ids)
                stats["mediation_success"] += int(ok.sum())
            closed_ids.extend([r, pc, ab] if nxt is not None else [r, pc, f])
        fb = self.feedback(np.concatenate(closed_ids)) if closed_ids else None
        return DayHandling(stats, fb or FeedbackEvents.none(cfg.feedback.closed_loop))

    def _complaints(self, ids: np.ndarray, closed_at: np.ndarray, rng: np.random.Generator) -> None:
        """Cases closed on paper: a resident who reported one and finds the problem persists
        complains with ``handling.reopen_prob``. Cases found by staff have nobody outside the
        system who knows, so their paper closure stands unless a channel finds the problem
        again (:mod:`sim.channels`). The complaint comes from the day after the closure, after
        an exponential delay, so it is triaged before that day's pools move past it; it refers
        to this closure only (``t_closed`` identifies it)."""
        want = (rng.random(len(ids)) < self.config.handling.reopen_prob) & (self.log.reporter[ids] >= 0)
        if not want.any():
            return
        at = closed_at[want]
        delay = rng.exponential(self.config.handling.reopen_delay_days, int(want.sum()))
        self.pending_reopen_ids = np.concatenate([self.pending_reopen_ids, ids[want]])
        self.pending_reopen_t = np.concatenate([self.pending_reopen_t, np.floor(at) + 1.0 + delay])
        self.pending_reopen_closed = np.concatenate([self.pending_reopen_closed, at])

    def due_reopens(self, until: float) -> tuple[np.ndarray, np.ndarray]:
        """Reporters' complaints due before ``until`` about cases still closed on paper."""
        due = self.pending_reopen_t < until
        ids, t = self.pending_reopen_ids[due], self.pending_reopen_t[due]
        closed_at = self.pending_reopen_closed[due]
        self.pending_reopen_ids = self.pending_reopen_ids[~due]
        self.pending_reopen_t = self.pending_reopen_t[~due]
        self.pending_reopen_closed = self.pending_reopen_closed[~due]
        log = self.log
        # only complaints about the closure that is still in force count
        still = (log.state[ids] == PAPER_CLOSED) & (log.t_closed[ids] == closed_at)
        ids, t = ids[still], t[still]
        order = np.argsort(t, kind="stable")
        ids, t = ids[order], t[order]
        first = np.unique(ids, return_index=True)[1]  # one reopening per case: the earliest
        return ids[first], t[first]

    def reopen(self, ids: np.ndarray, t: np.ndarray, rng: np.random.Generator,
               rng_handoff: np.random.Generator | None = None) -> int:
        """Reopen paper-closed cases and send them back through triage, a tier up.

        Returns:
            The number of cases reopened.
        """
        if len(ids) == 0:
            return 0
        log = self.log
        log.state[ids] = KNOWN
        log.reopens[ids] += 1
        log.t_reopened[ids] = t
        self.triage(ids, t, np.ones(len(ids), dtype=bool), rng, rng_handoff)
        return len(ids)

    # ------------------------------------------------------------------ feedback
    def feedback(self, ids: np.ndarray) -> FeedbackEvents | None:
        """Record what reporters of closed or abandoned cases are told: the feedback time
        and kind in the log (with the closed loop on), or silence. The residents' response
        (trust, future reporting, safety) is :meth:`sim.agents.ResidentPopulation.hear_feedback`."""
        log = self.log
        ids = ids[log.reporter[ids] >= 0]
        if len(ids) == 0:
            return None
        fb = self.config.feedback
        rep = log.reporter[ids]
        fixed = log.state[ids] == RESOLVED
        # an abandoned case is reported back from its failure, even if it was closed on
        # paper in an earlier episode
        t_close = np.where(log.state[ids] == FAILED, log.t_failed[ids], log.t_closed[ids])
        t_fb = t_close + fb.delay_hours / 24.0
        if fb.closed_loop:
            log.t_feedback[ids] = t_fb
            log.feedback_kind[ids] = np.where(fixed, Feedback.FIXED, Feedback.NOT_FIXED)
        else:
            log.feedback_kind[ids] = Feedback.SILENCE
        return FeedbackEvents(rep, fixed, fb.closed_loop, t_fb)

    # ------------------------------------------------------------------ summaries
    def utilisation_by_handler(self) -> dict[str, float]:
        out = {}
        for hname in ADVANCE_ORDER:
            lo, hi = self.pool_range[hname]
            pools = self.pools[lo:hi]
            cap = sum(p.capacity_time for p in pools)
            out[hname] = sum(p.busy_time for p in pools) / cap if cap > 0 else float("nan")
        return out

    def backlog_by_handler(self) -> dict[str, int]:
        out = {}
        for hname in ADVANCE_ORDER:
            lo, hi = self.pool_range[hname]
            pools = self.pools[lo:hi]
            out[hname] = sum(p.queue_length + p.busy + p.pending for p in pools)
        return out


_HANDLER_NAME = {code: name for name, code in HD.items()}


def _alloc(total: float, weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        return np.zeros(len(weights))
    return total * weights / weights.sum()
