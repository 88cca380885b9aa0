"""The four agent roles: residents, grid workers, police officers and volunteers.

Residents are many (1.8 M in the reference city), so their state lives in numpy arrays owned
by :class:`ResidentPopulation`, and their daily processes (exposure, perceived safety,
reporting propensity, trust) run as vectorised operations over those arrays. A
:class:`Resident` is a Mesa agent that *views* one row of the arrays; it is created only when
someone asks for it (``model.residents.agent(i)``), so a run touches resident objects only when
something happens to them and its cost grows with events, not residents x days.

Grid workers, officers and volunteers are few enough to be ordinary Mesa agents, created at
start-up. Their daily movements are drawn in bulk by :mod:`sim.patrols` (one vectorised draw
per role per day), and each agent's view (``agent.cell``, a grid worker's hours and workload)
reads those arrays. Volunteers' visits are drawn per grid (community volunteers), per beat
(volunteer police) and city-wide (riders) from their counts; the agents record who and where
they are.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from sim.dispatch import FeedbackEvents
    from sim.model import GovernanceModel
    from sim.scenario import Scenario


#: Spawn-key element of the per-day thinning generators (distinct from Streams.daily's 1).
_THIN_KEY = zlib.crc32(b"residents.thinning")


class ResidentPopulation:
    """Array-backed state of every resident agent.

    Each agent stands for ``scale`` people. Arrays are indexed by resident index ``0..n-1``,
    sorted by home cell, so the residents of cell ``c`` are ``cell_ptr[c]:cell_ptr[c+1]``.

    An agent's state (perceived safety, trust, reporting boost) is that of one of the people it
    stands for. Events arise from people, not agents (a victimisation, a fed-back report): the
    events of a cell's people fall on its agents, so an agent meets (people / agents in its
    cell), about ``scale``, times as many events as one person, and each changes the agent's
    state with the inverse of that ratio as probability (:meth:`represented`). Means and
    shares over agents then estimate the same quantities at any scale (issue 10), including
    non-linear ones such as the share answering "safe" in the survey, which a mean-field
    ``1 / scale`` effect would bias. At scale 1 no draw is made.
    """

    def __init__(self, config: Scenario, people_per_cell: np.ndarray, rng: np.random.Generator,
                 model: GovernanceModel | None = None):
        """Args:
            config: the scenario (``population``, ``safety``, ``feedback`` and the channels'
                adoption and elasticity are read).
            people_per_cell: (n_cells,) people living in each cell.
            rng: the ``residents`` stream.
            model: the Mesa model that owns the resident agents (needed only to create
                :class:`Resident` views; None for a population used on its own).
        """
        cfg = config.population
        self.config = config
        self.model = model
        self.scale = float(cfg.scale)
        # Stochastic rounding keeps the expected number of agents per cell exact at any scale.
        exact = people_per_cell / self.scale
        per_cell = np.floor(exact).astype(np.int64)
        per_cell += rng.random(len(exact)) < (exact - per_cell)
        self.per_cell = per_cell
        #: (n_cells,) people living in each cell (the agents of a cell stand for them)
        self.people = np.asarray(people_per_cell, dtype=np.float64)
        # chance that an event of one of a cell's people reaches the agent it falls on:
        # agents / people (1/scale up to the rounding of the cell's agent count)
        self._keep_p = np.divide(per_cell, self.people, out=np.ones(len(per_cell)),
                                 where=self.people > 0)
        self.cell_ptr = np.concatenate([[0], np.cumsum(per_cell)])
        n = int(self.cell_ptr[-1])
        self.n = n
        self.home = np.repeat(np.arange(len(per_cell), dtype=np.int32), per_cell)
        self.elderly_alone = rng.random(n) < cfg.elderly_alone_share
        self.party_household = rng.random(n) < cfg.party_household_share
        # trust ~ Beta with the configured mean and sd (method of moments; sd capped to a valid beta)
        m, sd = cfg.trust_mean, cfg.trust_sd
        if sd <= 0 or m in (0.0, 1.0):
            self.trust = np.full(n, m, dtype=np.float32)
        else:
            var = min(sd**2, 0.99 * m * (1 - m))
            k = m * (1 - m) / var - 1
            self.trust = rng.beta(m * k, (1 - m) * k, n).astype(np.float32)
        scfg = config.safety
        self.baseline = np.clip(
            scfg.baseline_mean + scfg.baseline_sd * rng.standard_normal(n), 0, 1
        ).astype(np.float32)
        self.safety = self.baseline.copy()
        self.app_user = rng.random(n) < config.channels.snap_report.resident_adoption
        self.victimisations = np.zeros(n, dtype=np.int16)
        self.reports_made = np.zeros(n, dtype=np.int16)
        self.last_event_day = np.full(n, -1, dtype=np.int32)
        self.party_mult = np.where(self.party_household, cfg.party_report_multiplier, 1.0).astype(np.float32)
        # Fast per-cell sums: residents are sorted by home cell, so a cell's residents are one
        # contiguous segment and np.add.reduceat sums every cell in one pass.
        n_cells = len(per_cell)
        self.n_cells = n_cells
        self._nonempty = np.flatnonzero(per_cell > 0)
        self._seg_start = self.cell_ptr[:-1][self._nonempty]
        # Reporting propensity, kept incrementally (see propensity_of): base_i depends on trust
        # and party membership and changes only when trust does; the feedback boost decays at
        # one rate for everyone, so per-cell sums of it decay by one factor a day.
        fb = config.feedback
        self.elasticity = float(config.channels.hotline.trust_elasticity)
        self.boost_extra = float(fb.report_boost - 1.0)
        self.boost_decay = float(np.exp(-1.0 / fb.boost_memory_days))
        self.boost_day = np.full(n, -np.inf, dtype=np.float64)  # day of the last visible fix
        self.base = self._base(np.arange(n))
        self.cell_base = self.cell_sum(self.base)
        self.cell_boost = np.zeros(n_cells)
        self._agents: dict[int, Resident] = {}
        # Thinning of events at scale > 1: one generator per day, keyed on this stream's seed
        # and the day (no draw from ``rng`` itself, so set-up draws do not move).
        self._thin_seed = rng.bit_generator.seed_seq
        self._thin_day: tuple[int, np.random.Generator] | None = None

    # ------------------------------------------------------------------ sampling
    def random_in_cells(self, cells: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A uniformly chosen resident of each cell (u uniform in [0,1)); -1 where none lives."""
        lo = self.cell_ptr[cells]
        cnt = self.per_cell[cells]
        idx = lo + np.minimum((u * cnt).astype(np.int64), np.maximum(cnt - 1, 0))
        return np.where(cnt > 0, idx, -1).astype(np.int32)

    def weighted_in_cells(self, cells: np.ndarray, u: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """A resident of each cell chosen with probability proportional to ``weight`` (per
        resident). Used for welfare needs, which fall mostly on the elderly living alone."""
        out = np.full(len(cells), -1, dtype=np.int32)
        for j, (c, uj) in enumerate(zip(cells.tolist(), u.tolist(), strict=True)):
            lo, hi = self.cell_ptr[c], self.cell_ptr[c + 1]
            if hi == lo:
                continue
            w = np.cumsum(weight[lo:hi])
            out[j] = lo + min(int(np.searchsorted(w, uj * w[-1], side="right")), hi - lo - 1)
        return out

    # ------------------------------------------------------------------ propensity
    def _base(self, idx: np.ndarray) -> np.ndarray:
        return (np.power(self.trust[idx] / 0.5, self.elasticity) * self.party_mult[idx]).astype(np.float32)

    def boost_now(self, idx: np.ndarray, day: float) -> np.ndarray:
        """Feedback boost of residents at ``day``: 1 + (report_boost - 1) x decay^(days since
        their last visible fix); 1 for those never fed back a fix."""
        age = day - self.boost_day[idx]
        return 1.0 + self.boost_extra * np.power(self.boost_decay, age)

    def propensity_of(self, idx: np.ndarray, day: float) -> np.ndarray:
        """Hotline reporting propensity multiplier of residents: (trust / 0.5) ** elasticity x
        party-household multiplier x feedback boost."""
        return self.base[idx] * self.boost_now(idx, day)

    def cell_propensity(self) -> np.ndarray:
        """Mean propensity of each cell's residents, from the incremental sums: no pass over
        all residents. Where people live but no agent stands for them (at ``scale`` > 1), the
        mean over all agents; 0 where nobody lives."""
        tot = self.cell_base + self.cell_boost
        fill = float(tot.sum() / self.n) if self.n else 0.0
        out = np.where(self.people > 0, fill, 0.0)
        return np.divide(tot, self.per_cell, out=out, where=self.per_cell > 0)

    def end_day(self) -> None:
        """Boosts fade by one day."""
        self.cell_boost *= self.boost_decay

    def change_trust(self, idx: np.ndarray, new_trust: np.ndarray, day: float) -> None:
        """Set residents' trust (unique indices) and keep the propensity sums exact."""
        old_base = self.base[idx]
        self.trust[idx] = np.clip(new_trust, 0.0, 1.0)
        new_base = self._base(idx)
        self.base[idx] = new_base
        cells = self.home[idx]
        g = self.boost_now(idx, day) - 1.0
        np.add.at(self.cell_base, cells, new_base.astype(np.float64) - old_base)
        np.add.at(self.cell_boost, cells, (new_base.astype(np.float64) - old_base) * g)

    def give_boost(self, idx: np.ndarray, day: float) -> None:
        """Residents (unique indices) saw their report visibly fixed: their propensity is
        boosted by ``feedback.report_boost``, fading with ``boost_memory_days``."""
        g_old = self.boost_now(idx, day) - 1.0
        self.boost_day[idx] = day
        np.add.at(self.cell_boost, self.home[idx], self.base[idx] * (self.boost_extra - g_old))

    # ------------------------------------------------------------------ events
    def represented(self, idx: np.ndarray, day: int) -> np.ndarray:
        """Which of these events change the agent's own state. Each entry of ``idx`` (an
        agent; may repeat) is one event that happened to one of the people the agent stands
        for; it reaches the agent's state with probability agents / people of the agent's home
        cell (``1 / scale`` up to the rounding of the cell's agent count), independently, so
        an agent meets as many events as one person. All of them at scale 1, with no draw.

        Draws come from a generator keyed on the ``residents`` stream and the day, so a
        policy changes them only from the day it changes the events.
        """
        if self.scale <= 1.0 or len(idx) == 0:
            return np.ones(len(idx), dtype=bool)
        if self._thin_day is None or self._thin_day[0] != day:
            ss = self._thin_seed
            seq = np.random.SeedSequence(entropy=ss.entropy,
                                         spawn_key=(*ss.spawn_key, _THIN_KEY, int(day)),
                                         pool_size=ss.pool_size)
            self._thin_day = (day, np.random.Generator(np.random.PCG64(seq)))
        return self._thin_day[1].random(len(idx)) < self._keep_p[self.home[idx]]

    def record_reports(self, reporters: np.ndarray, day: int) -> None:
        """Residents made reports today (an index may repeat: one entry per report)."""
        if len(reporters):
            np.add.at(self.reports_made, reporters, 1)
            self.last_event_day[reporters] = day

    def hear_feedback(self, events: FeedbackEvents, day: int) -> dict[str, int]:
        """Reporters hear the outcome of their cases (DESIGN.md section 6).

        With the closed loop on, a fix raises the reporter's trust (by ``feedback.trust_gain``
        of the way to 1), boosts their future reporting and lifts their perceived safety by
        ``safety.feedback_gain``; a failure or a fake closure lowers trust by
        ``feedback.trust_loss_failure``. Without it, silence lowers trust by
        ``feedback.trust_loss_silence``. Each case's outcome reaches the reporter agent's own
        state with probability ``1 / scale`` (:meth:`represented`); the counts and
        ``last_event_day`` cover every case.

        Returns:
            Counts of cases fed back as fixed / not fixed / silence.
        """
        out = {"feedback_fixed": 0, "feedback_not_fixed": 0, "feedback_silence": 0}
        rep = events.reporters
        if len(rep) == 0:
            return out
        fb = self.config.feedback
        fixed = events.fixed
        d = float(day)
        if events.closed_loop:
            out["feedback_fixed"] = int(fixed.sum())
            out["feedback_not_fixed"] = int((~fixed).sum())
        else:
            out["feedback_silence"] = len(rep)
        self.last_event_day[rep] = day
        keep = self.represented(rep, day)
        rep, fixed = rep[keep], fixed[keep]
        if events.closed_loop:
            good = np.unique(rep[fixed])
            self.change_trust(good, self.trust[good] + fb.trust_gain * (1 - self.trust[good]), d)
            self.give_boost(good, d)
            self.safety[good] = np.minimum(1.0, self.safety[good] + self.config.safety.feedback_gain)
            bad = np.unique(rep[~fixed])
            self.change_trust(bad, self.trust[bad] * (1 - fb.trust_loss_failure), d)
        else:
            silent = np.unique(rep)
            self.change_trust(silent, self.trust[silent] * (1 - fb.trust_loss_silence), d)
        return out

    # ------------------------------------------------------------------ cell aggregates
    def cell_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-resident quantity over each cell's residents (float64; 0 where empty)."""
        out = np.zeros(self.n_cells)
        if len(self._nonempty):
            out[self._nonempty] = np.add.reduceat(values, self._seg_start, dtype=np.float64)
        return out

    def cell_mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of a per-resident quantity over each cell's residents (0 where empty)."""
        return np.divide(self.cell_sum(values), self.per_cell, out=np.zeros(self.n_cells),
                         where=self.per_cell > 0)

    # ------------------------------------------------------------------ agents
    def agent(self, i: int) -> Resident:
        """The Mesa agent for resident ``i`` (created on first access)."""
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(f"resident index {i} out of range 0..{self.n - 1}")
        a = self._agents.get(i)
        if a is None:
            if self.model is None:
                raise RuntimeError("this population belongs to no model: no agent views")
            a = Resident(self.model, i)
            self._agents[i] = a
        return a

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Resident:
        return self.agent(i)


class Resident(mesa.Agent):
    """One resident agent (standing for ``population.scale`` people): a view of one row of
    :class:`ResidentPopulation`. Reading or writing an attribute reads or writes the arrays."""

    def __init__(self, model: GovernanceModel, index: int):
        super().__init__(model)
        self.index = index

    @property
    def _pop(self) -> ResidentPopulation:
        return self.model.residents

    @property
    def home_cell(self) -> int:
        return int(self._pop.home[self.index])

    @property
    def grid(self) -> int:
        return int(self.model.city.grid[self.home_cell])

    @property
    def elderly_alone(self) -> bool:
        return bool(self._pop.elderly_alone[self.index])

    @property
    def party_household(self) -> bool:
        return bool(self._pop.party_household[self.index])

    @property
    def app_user(self) -> bool:
        return bool(self._pop.app_user[self.index])

    @property
    def trust(self) -> float:
        return float(self._pop.trust[self.index])

    @trust.setter
    def trust(self, value: float) -> None:
        self._pop.change_trust(np.array([self.index]), np.array([value], dtype=np.float32),
                               max(self.model.day, 0))

    @property
    def perceived_safety(self) -> float:
        return float(self._pop.safety[self.index])

    @perceived_safety.setter
    def perceived_safety(self, value: float) -> None:
        self._pop.safety[self.index] = np.clip(value, 0.0, 1.0)

    @property
    def reporting_boost(self) -> float:
        """Current multiplier on this resident's reporting after a visible fix (1 = none)."""
        return float(self._pop.boost_now(np.array([self.index]), self.model.day)[0])

    @property
    def victimisations(self) -> int:
        return int(self._pop.victimisations[self.index])

    @property
    def reports_made(self) -> int:
        return int(self._pop.reports_made[self.index])

    @property
    def last_event_day(self) -> int:
        """Last day something happened to this resident (victim, report, feedback); -1 never."""
        return int(self._pop.last_event_day[self.index])

    def incidents(self):
        """This resident's incidents as victim or reporter (rows of the event log)."""
        log = self.model.incidents
        mask = (log.view("victim") == self.index) | (log.view("reporter") == self.index)
        return log.to_frame().loc[mask]


class GridWorker(mesa.Agent):
    """A full-time grid worker (网格员) responsible for one grid.

    The daily hour budget is split into paperwork (forms and inspection items), case work in
    the grid (on-the-spot fixes, verifying and feeding back community cases) and patrol visits,
    which discover latent problems. The split is computed for all workers at once by
    :meth:`sim.channels.Patrols.plan_workers`; these attributes hold the worker's share.
    """

    def __init__(self, model: GovernanceModel, grid: int):
        super().__init__(model)
        self.grid = int(grid)
        self.hours_budget = float(model.config.grid_workers.hours_per_day)
        self._home_cell = int(model.city.grid_cells[model.city.grid_cell_ptr[self.grid]])

    @property
    def cell(self) -> int:
        """The cell of the grid's last patrol visit (the grid's first cell before any)."""
        c = int(self.model.patrols.worker_last_cell[self.grid])
        return c if c >= 0 else self._home_cell

    def _share(self, arr: np.ndarray) -> float:
        w = float(self.model.patrols.workers_grid[self.grid])  # full-time equivalents
        return float(arr[self.grid]) / w if w > 0 else float("nan")

    @property
    def paperwork_hours(self) -> float:
        return self._share(self.model.patrols.worker_paper_h_grid)

    @property
    def case_hours(self) -> float:
        return self._share(self.model.patrols.worker_case_h_grid)

    @property
    def patrol_hours(self) -> float:
        return self._share(self.model.patrols.worker_patrol_h_grid)

    @property
    def utilisation(self) -> float:
        return float(self.model.patrols.worker_util_grid[self.grid])


class PoliceOfficer(mesa.Agent):
    """A police officer (or auxiliary) with a beat: a township normally, a group of grids
    under police-grid fusion. Patrols deter deterrable incidents and discover problems;
    response capacity is pooled per county in the police handling pool."""

    def __init__(self, model: GovernanceModel, beat: int, county: int):
        super().__init__(model)
        self.beat = int(beat)
        self.county = int(county)
        self.strategy = model.config.police.strategy

    @property
    def cell(self) -> int:
        """The cell of the beat's last patrol visit (-1 before any)."""
        return int(self.model.patrols.beat_last_cell[self.beat])


class Volunteer(mesa.Agent):
    """A volunteer agent standing for ``volunteers.agent_scale`` people.

    kinds: ``community`` (walks near home, reports through the phone channel),
    ``volunteer_police`` (patrols with officers: deters and discovers; helps mediation),
    ``rider`` (delivery riders crossing the city, reporting through the phone channel).
    """

    KINDS = ("community", "volunteer_police", "rider")

    def __init__(self, model: GovernanceModel, kind: str, home_cell: int):
        if kind not in self.KINDS:
            raise ValueError(f"volunteer kind must be one of {self.KINDS}, not {kind!r}")
        super().__init__(model)
        self.kind = kind
        self.home_cell = int(home_cell)
