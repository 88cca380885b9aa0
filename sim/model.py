"""The governance model: one Mesa model, one step per day.

``GovernanceModel(scenario=None, rng=None, **overrides)`` builds the city, its residents, grid
workers, police and volunteers from a scenario, and ``step()`` advances one day. Mesa's clock
drives time: after ``k`` steps ``model.time == k`` and everything up to that time has happened
(day ``d`` is the interval ``[d, d+1)``; events inside it carry fractional times).

Order of one day (see ``docs/MODEL.md`` for the reasons):

1. patrol plans and visits (grid workers' hour split, police beats, volunteers, riders,
   screening, drones);
2. arrivals: background Poisson incidents (rate = population x base rate x risk x deterrence
   by yesterday's guardian presence x disorder), due near-repeat offspring and escalated
   disputes; each new incident draws its own offspring;
3. reporters' reopening complaints that fall due; discovery through every channel; on-the-spot
   fixes; triage and dispatch of new and reopened reports;
4. handler pools advance to the end of the day: attempts end, resolve, close on paper, or
   escalate; reporters get feedback;
5. harm from unresolved problems; unmediated disputes may turn into public-safety incidents
   (tomorrow);
6. residents: reporting boosts fade, perceived safety updates, survey wave when due;
7. the day's metrics are collected (``model.datacollector``, one row per day).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mesa
import numpy as np
from mesa.datacollection import DataCollector

from sim import metrics as M
from sim.agents import GridWorker, PoliceOfficer, ResidentPopulation, Volunteer
from sim.channels import Channels
from sim.city import City, city_from_scenario
from sim.codes import CAT, HD, OPEN_STATES
from sim.dispatch import Dispatcher, FeedbackEvents
from sim.incidents import (
    BACKGROUND,
    ESCALATION,
    KNOWN,
    NEAR_REPEAT,
    PAPER_CLOSED,
    UNDISCOVERED,
    CategoryArrays,
    IncidentLog,
    Offspring,
    arrival_rates,
    background_arrivals,
    draw_offspring,
    draw_severity,
)
from sim.patrols import Patrols, allocate
from sim.rng import Streams, root_sequence
from sim.safety import SafetyModel
from sim.scenario import Scenario, load_scenario


class GovernanceModel(mesa.Model):
    """Agent-based model of grid-based community governance.

    Args:
        scenario: a path to a scenario YAML file, a name under ``scenarios/`` (``"default"``),
            a loaded :class:`~sim.scenario.Scenario`, or None for the built-in defaults.
        rng: the root seed (int or ``numpy.random.SeedSequence``); None draws fresh entropy,
            recorded in ``model.seed_entropy`` so the run can be repeated.
        **overrides: dotted scenario keys, e.g. ``GovernanceModel(**{"grids.count": 300})``;
            this is what ``mesa.batch_run(GovernanceModel, parameters={...})`` passes.

    Attributes:
        config: the frozen, validated scenario (``model.scenario`` is Mesa's own object).
        city: the lattice, its population, risk and administrative units (:class:`City`).
        residents: the array-backed resident population (agents created on demand).
        incidents: the event log (:class:`~sim.incidents.IncidentLog`).
        datacollector: daily model-level metrics (one row per day).
    """

    def __init__(
        self,
        scenario: str | Path | Scenario | None = None,
        rng: int | np.random.SeedSequence | None = None,
        **overrides: Any,
    ):
        config = load_scenario(scenario, overrides or None)
        root = root_sequence(rng)
        streams = Streams(root)
        super().__init__(rng=streams.get("mesa"))
        self.config = config
        self.streams = streams
        self.seed_entropy = root.entropy
        self.seed_spawn_key = tuple(root.spawn_key)
        self.day = -1
        cfg = config
        c = cfg.city

        self.city: City = city_from_scenario(cfg, streams.get("city.population"),
                                             streams.get("city.risk"))
        self.cat = CategoryArrays.from_scenario(cfg.incidents)
        self.residents = ResidentPopulation(cfg, self.city.population, streams.get("residents"),
                                            model=self)
        res = self.residents
        self.welfare_weight = np.where(
            res.elderly_alone, cfg.population.elderly_welfare_multiplier, 1.0
        )
        expected = (
            sum(cat.base_rate for _, cat in cfg.incidents.items()) * c.population / 1000 / 365
        )
        self.incidents = IncidentLog(capacity=int(expected * min(cfg.days, 400) * 1.3) + 1024)
        self._pending: Offspring | None = None
        self._pending_origin = np.zeros(0, dtype=np.int8)

        # The components, each given what it needs (no component reads the model object).
        self.patrols = Patrols(cfg, self.city)
        self.channels = Channels(cfg, self.city, self.cat, res)
        # party-member households' share per cell relative to the city's (capped at 3x), for
        # their help with mediation
        party_share = res.cell_mean(res.party_household.astype(np.float32))
        overall = max(float(res.party_household.mean()) if res.n else 0.0, 1e-12)
        self.dispatcher = Dispatcher(cfg, self.city, self.cat, self.incidents,
                                     party_share_rel=np.minimum(3.0, party_share / overall),
                                     response_travel_days=self.patrols.response_travel_days_of_cell)
        self.safety = SafetyModel(cfg.safety, self.city, res)
        # Case-work hours waiting for each grid's workers: on-the-spot fixes and community
        # cases add to it during a day, the next day's patrol plan consumes it.
        self.case_hours_pending = np.zeros(self.city.n_grids)
        # feedback closed cases' reporters have not heard yet (it reaches them after a delay)
        self._feedback_pending = FeedbackEvents.none(cfg.feedback.closed_loop)
        self._make_staff(streams.get("staff"))
        self.cell_propensity = res.cell_propensity()
        self._space = None
        self.today: dict[str, float] = {}
        self.counters = M.Counters()
        self.datacollector = DataCollector(model_reporters=M.model_reporters())
        self.running = True

    # ------------------------------------------------------------------ set-up
    def _make_staff(self, rng: np.random.Generator) -> None:
        cfg = self.config
        city = self.city
        # one agent per whole worker (largest remainder over grids); their hours are the
        # grid's full-time equivalents (Patrols.workers_grid)
        w = self.patrols.workers_grid
        for g, n in enumerate(allocate(int(round(float(w.sum()))), w).tolist()):
            for _ in range(n):
                GridWorker(self, g)
        county_of_beat = np.zeros(self.patrols.n_beats, dtype=np.int64)
        county_of_beat[self.patrols.beat_of_cell] = city.county
        for b, n in enumerate(self.patrols.officers_per_beat.tolist()):
            for _ in range(n):
                PoliceOfficer(self, b, county_of_beat[b])
        vc = cfg.volunteers
        w = city.population / max(1, city.population.sum())
        for kind, count in (("community", vc.community), ("volunteer_police", vc.volunteer_police),
                            ("rider", vc.riders)):
            n_agents = int(round(count / vc.agent_scale))
            if n_agents == 0:
                continue
            homes = rng.choice(city.n_cells, size=n_agents, p=w)
            for h in homes.tolist():
                Volunteer(self, kind, h)

    @property
    def space(self):
        """The lattice as a Mesa ``OrthogonalMooreGrid`` with property layers (population,
        risk, urban). Built on first use: at city scale (60,000+ cells) Mesa cell objects cost
        seconds and tens of MiB, so the model itself works on numpy arrays indexed by cell
        (``idx = y * width + x``) and this view exists for visualisation and users' code."""
        if self._space is None:
            from mesa.discrete_space import OrthogonalMooreGrid, PropertyLayer

            city = self.city
            grid = OrthogonalMooreGrid((city.width, city.height), torus=False, random=self.random)
            for name, values in (("population", city.population), ("risk", city.risk),
                                 ("urban", city.urban), ("grid", city.grid)):
                arr = values.reshape(city.height, city.width).T.astype(float)
                layer = PropertyLayer.from_data(name, arr)
                grid.add_property_layer(layer)
            self._space = grid
        return self._space

    # ------------------------------------------------------------------ one day
    def step(self) -> None:
        """Advance one day."""
        d = self.steps - 1  # Mesa has already counted this step
        self.day = d
        assert self.time == d + 1, "step() must be driven by Mesa's clock (model.step())"
        cfg = self.config
        city = self.city
        log = self.incidents
        S = self.streams
        self.today = dict.fromkeys(M.DAILY_KEYS, 0.0)

        # deterrence from guardian presence up to yesterday (never today's policy: CRN)
        deter = np.exp(-cfg.dynamics.deterrence_per_visit * self.patrols.presence)
        disorder_nb, disorder_cell = self._disorder()

        # 1. patrols
        visits = self.patrols.draw(d, S.daily("patrol", d), self.case_hours_pending)
        if cfg.grid_workers.overload_slowdown:
            # case work not done today waits for tomorrow, and delays the grid's new cases
            self.case_hours_pending = self.patrols.case_hours_left.copy()
            self.dispatcher.set_overload(self.patrols.case_delay_days_grid)
        else:
            self.case_hours_pending = np.zeros(city.n_grids)

        # 2. arrivals
        new_ids = self._arrivals(d, deter, disorder_nb)

        # 3. reopen complaints, discovery, on-the-spot fixes, triage
        rng_tri = S.daily("triage", d)
        rng_ho = S.daily("handoff", d)
        r_ids, r_t = self.dispatcher.due_reopens(d + 1.0)
        reopened = self.dispatcher.reopen(r_ids, r_t, rng_tri, rng_ho)
        c_ids, c_t = self.dispatcher.due_chases(d + 1.0)  # cases lost in a hand-off, chased
        self.dispatcher.triage(c_ids, c_t, np.zeros(len(c_ids), bool), rng_tri, rng_ho)
        det = self.channels.discover(d, log, visits, self.cell_propensity, S.daily("reporting", d))
        self.residents.record_reports(det.reporters, d)
        self.case_hours_pending += det.on_spot_hours
        self.dispatcher.triage(det.new_ids, det.new_report_t, np.zeros(len(det.new_ids), bool),
                               rng_tri, rng_ho)
        reopened += self.dispatcher.reopen(det.reopened_ids, det.reopened_t, rng_tri, rng_ho)
        self.today["reopened"] += reopened
        routed_comm = det.new_ids[log.handler[det.new_ids] == HD["community"]]
        if len(routed_comm):
            g = city.grid[log.cell[routed_comm]]
            self.case_hours_pending += (
                np.bincount(g, minlength=city.n_grids) * cfg.grid_workers.case_hours_per_case
            )

        # 4. handling: every pool catches up with Mesa's clock (model.time == d + 1 here);
        # reporters hear the outcome of their closed cases when the feedback reaches them
        handled = self.dispatcher.advance(float(self.time), S.daily("outcomes", d), S.daily("escalation", d))
        hstats = handled.stats
        fb = self._feedback_pending + handled.feedback
        due = fb.t < d + 1.0
        self._feedback_pending = fb.take(~due)
        for k, v in self.residents.hear_feedback(fb.take(due), d).items():
            self.today[k] += v

        # 5. harm and dispute escalation
        harmed = self._harm_and_escalation(d, S.daily("harm", d))

        # 6. residents
        res = self.residents
        res.end_day()
        self.cell_propensity = res.cell_propensity()
        cats = log.category[new_ids]
        nonlat = ~self.cat.latent[cats]
        exposure = np.bincount(log.cell[new_ids][nonlat], weights=self.cat.safety_impact[cats][nonlat],
                               minlength=city.n_cells)
        self.safety.update(exposure, disorder_cell,
                           visits.guardians(cfg.dynamics.community_volunteer_guardian_weight))
        survey = None
        if (d + 1) % cfg.safety.survey_interval_days == 0:
            survey = self.safety.survey(d, S.daily("survey", d))

        # 7. metrics
        M.record_day(self, new_ids, det, hstats, harmed, visits, survey)
        self.datacollector.collect(self)

    def _disorder(self) -> tuple[np.ndarray, np.ndarray]:
        """Visible unresolved latent problems: per cell (weighted by visibility and safety
        impact, for perceived safety) and summed over the Moore neighbourhood (weighted by
        visibility, for broken-windows feedback on arrival rates)."""
        log = self.incidents
        n = self.city.n_cells
        ids = log.open_ids()
        cat = log.category[ids]
        lat = self.cat.latent[cat]
        ids, cat = ids[lat], cat[lat]
        cells = log.cell[ids]
        vis = self.cat.visibility[cat]
        cell_vis = np.bincount(cells, weights=vis, minlength=n)
        cell_safety = np.bincount(cells, weights=vis * self.cat.safety_impact[cat], minlength=n)
        nb = self.city.neighbours
        nb_sum = cell_vis + np.where(nb >= 0, cell_vis[np.maximum(nb, 0)], 0.0).sum(axis=1)
        return nb_sum, cell_safety

    def _arrivals(self, d: int, deter: np.ndarray, disorder: np.ndarray) -> np.ndarray:
        """Today's new incidents: background arrivals, due near-repeat offspring and escalated
        disputes. Each category draws from its own streams (``arrivals.<category>``,
        ``near_repeat.<category>``), so changing one category's rate leaves every other
        category's incidents untouched (common random numbers)."""
        city = self.city
        cp = self.cat
        rates = arrival_rates(city.population, city.risk, cp, deter, disorder, urban=city.urban)
        parts = []
        for name, k in CAT.items():
            rng = self.streams.daily(f"arrivals.{name}", d)
            cat, cell, t = background_arrivals(rates[k][None, :], d, rng)
            cat = np.full(len(cell), k, dtype=np.int8)
            sev = draw_severity(cat, cp, rng)
            u = rng.random(len(cat))
            parts.append((cat, cell, t, sev, u, np.full(len(cat), BACKGROUND, np.int8),
                          np.full(len(cat), -1, np.int64)))
        # Triggered incidents falling due today (deterrable ones thinned by deterrence). New
        # incidents draw their offspring at once, and offspring due before the day ends join
        # today's incidents in turn, so every incident is logged on the day it occurs.
        self._add_due_offspring(d, deter, parts)
        ids_all = []
        batch = parts
        rounds = 0
        while batch:
            cat, cell, t, severity, u, origin, parent = (np.concatenate(x) for x in zip(*batch, strict=True))
            ids = self._log_incidents(d, cat, cell, t, severity, u, origin, parent)
            ids_all.append(ids)
            for name, k in CAT.items():
                sel = cat == k
                if cp.near_repeat_branching[k] > 0 and sel.any():
                    stream = f"near_repeat.{name}" if rounds == 0 else f"near_repeat.{name}.{rounds}"
                    kids = draw_offspring(ids[sel], cat[sel], cell[sel], t[sel], cp, city.neighbours,
                                          self.streams.daily(stream, d))
                    if kids is not None:
                        self._queue(kids, NEAR_REPEAT)
            rounds += 1
            batch = []
            self._add_due_offspring(d, deter, batch, round_=rounds)
        ids = np.concatenate(ids_all) if ids_all else np.zeros(0, dtype=np.int64)
        self.patrols.record_incidents(self.incidents.cell[ids])
        return ids

    def _add_due_offspring(self, d: int, deter: np.ndarray, parts: list, round_: int = 0) -> None:
        """Move pending triggered incidents that occur before the end of day ``d`` into
        ``parts`` (thinning deterrable ones by deterrence)."""
        cp = self.cat
        p = self._pending
        if p is None or not len(p.time):
            return
        due = p.time < d + 1.0
        if not due.any():
            return
        keep = due & ((~cp.deterrable[p.category]) | (p.keep_u < deter[p.cell]))
        rng = self.streams.daily(f"arrivals.triggered.{round_}" if round_ else "arrivals.triggered", d)
        kc = p.category[keep]
        parts.append((kc, p.cell[keep], p.time[keep], draw_severity(kc, cp, rng),
                      rng.random(int(keep.sum())), self._pending_origin[keep], p.parent[keep]))
        rest = ~due
        self._pending = Offspring(p.category[rest], p.cell[rest], p.time[rest],
                                  p.parent[rest], p.keep_u[rest])
        self._pending_origin = self._pending_origin[rest]

    def _log_incidents(self, d, cat, cell, t, severity, u, origin, parent) -> np.ndarray:
        """Append incidents to the log with their victims; victims of public-safety incidents
        feel it at once (harm victims are added in _harm_and_escalation)."""
        cp = self.cat
        victim = np.full(len(cat), -1, dtype=np.int32)
        hv = cp.has_victim[cat]
        wel = hv & (cat == CAT["welfare"])
        oth = hv & ~wel
        if oth.any():
            victim[oth] = self.residents.random_in_cells(cell[oth], u[oth])
        if wel.any():
            victim[wel] = self.residents.weighted_in_cells(cell[wel], u[wel], self.welfare_weight)
        ids = self.incidents.add(cat, cell, t, severity, origin, parent, victim)
        self.safety.victimise(victim[cat == CAT["public_safety"]], d)
        return ids

    def _queue(self, kids: Offspring, origin: int) -> None:
        if self._pending is None:
            self._pending = kids
            self._pending_origin = np.full(len(kids.time), origin, dtype=np.int8)
            return
        p = self._pending
        self._pending = Offspring(
            np.concatenate([p.category, kids.category]), np.concatenate([p.cell, kids.cell]),
            np.concatenate([p.time, kids.time]), np.concatenate([p.parent, kids.parent]),
            np.concatenate([p.keep_u, kids.keep_u]),
        )
        self._pending_origin = np.concatenate(
            [self._pending_origin, np.full(len(kids.time), origin, dtype=np.int8)]
        )

    def _harm_and_escalation(self, d: int, rng: np.random.Generator) -> int:
        log = self.incidents
        cp = self.cat
        ids = log.open_ids()
        if len(ids) == 0:
            return 0
        cat = log.category[ids]
        st = log.state[ids]
        u = rng.random(len(ids))
        # harm: unresolved problems (latent or known, or closed only on paper) hurt someone
        hh = cp.harm_hazard[cat]
        harm = u < hh
        harmed_ids = ids[harm]
        if len(harmed_ids):
            log.harm[harmed_ids] += 1
            victims = self.residents.random_in_cells(log.cell[harmed_ids], rng.random(len(harmed_ids)))
            self.safety.victimise(victims, d)
        # unmediated disputes may turn into public-safety incidents tomorrow
        eh = cp.escalation_hazard[cat]
        is_disp = (cat == CAT["dispute"]) & ~log.became_public_safety[ids] & np.isin(st, OPEN_STATES)
        u2 = rng.random(len(ids))
        esc = is_disp & (u2 < eh)
        e_ids = ids[esc]
        if len(e_ids):
            log.became_public_safety[e_ids] = True
            kids = Offspring(
                category=np.full(len(e_ids), CAT["public_safety"], dtype=np.int8),
                cell=log.cell[e_ids].astype(np.int32),
                time=d + 1.0 + rng.random(len(e_ids)),
                parent=e_ids.astype(np.int64),
                keep_u=np.zeros(len(e_ids)),  # escalations are never deterred away
            )
            self._queue(kids, ESCALATION)
        self.today["became_public_safety"] += len(e_ids)
        return len(harmed_ids)

    # ------------------------------------------------------------------ running
    def run(self, days: int | None = None, progress: bool = False) -> GovernanceModel:
        """Run ``days`` more days (default: the scenario's ``days``)."""
        days = self.config.days if days is None else int(days)
        if progress:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          TextColumn("day {task.completed}/{task.total}"), TimeRemainingColumn(),
                          transient=True) as bar:
                task = bar.add_task(self.config.name, total=days)
                for _ in range(days):
                    self.step()
                    bar.advance(task)
        else:
            for _ in range(days):
                self.step()
        return self

    # ------------------------------------------------------------------ results
    def summary(self, warmup_days: int = 0) -> dict[str, float]:
        """Run-level summary metrics (see :mod:`sim.metrics`), for incidents occurring on or
        after ``warmup_days``."""
        return M.summarise(self, warmup_days)

    def timeseries(self):
        """Daily model-level metrics as a DataFrame (one row per day, column ``day``)."""
        df = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        df.insert(0, "day", np.arange(1, len(df) + 1))
        return df

    def monthly_table(self, warmup_days: int = 0):
        """Closure as administrations measure it, one row per 30-day period after the warm-up
        (:func:`sim.metrics.monthly`)."""
        return M.monthly(self, warmup_days=warmup_days)

    def incident_table(self):
        """The event log, one row per incident."""
        return self.incidents.to_frame(grid_of_cell=self.city.grid)

    def cell_table(self):
        """One row per lattice cell at the current day: position, population, land use, risk,
        administrative units, and cell-level outcomes (incidents so far, open problems by
        state, residents' mean perceived safety and trust, guardian presence). Kept apart from
        the daily and incident tables; the map plots draw from it."""
        import pandas as pd

        city = self.city
        n = city.n_cells
        log = self.incidents
        cells = log.view("cell")
        st = log.view("state")
        res = self.residents
        idx = np.arange(n)
        return pd.DataFrame({
            "cell": idx, "x": idx % city.width, "y": idx // city.width,
            "population": city.population, "urban": city.urban, "risk": city.risk,
            "county": city.county, "township": city.township, "community": city.community,
            "grid": city.grid,
            "incidents": np.bincount(cells, minlength=n),
            "undiscovered": np.bincount(cells[st == UNDISCOVERED], minlength=n),
            "backlog": np.bincount(cells[st == KNOWN], minlength=n),
            "paper_closed": np.bincount(cells[st == PAPER_CLOSED], minlength=n),
            "perceived_safety": np.where(res.per_cell > 0, res.cell_mean(res.safety), np.nan),
            "trust": np.where(res.per_cell > 0, res.cell_mean(res.trust), np.nan),
            "guardian_presence": self.patrols.presence,
        })

    def open_counts(self) -> dict[str, int]:
        st = self.incidents.view("state")
        return {"undiscovered": int((st == UNDISCOVERED).sum()), "known": int((st == KNOWN).sum()),
                "paper_closed": int((st == PAPER_CLOSED).sum())}
