"""Naive per-agent reference for the residents' daily update (issue 5, target 3).

The model (``sim``) keeps residents in numpy arrays and updates them all at once. This module
implements THE SAME RULES the textbook Mesa way, one :class:`NaiveResident` agent at a time,
so that ``benchmarks/bench_residents.py`` can time the two side by side and
``tests/test_naive_residents.py`` can check that both give the same distribution of outcomes.
It lives in ``benchmarks/`` and is never imported by ``sim``.

What one day of :class:`NaiveResidentModel` does (the residents' part of
``GovernanceModel.step``; patrols, discovery by other channels, handling, harm and near-repeat
offspring are not part of it, and their outputs are held fixed, see :class:`DayInputs`):

1. the environment: per cell and category, the expected incidents today, with the formula of
   ``GovernanceModel._arrivals``: population x base_rate / 1000 / 365 x risk x deterrence
   ``exp(-delta presence)`` (deterrable categories) x ``(1 + s ln(1 + D))`` (disorder
   sensitive ones); divided among the cell's residents (the welfare category in proportion to
   the welfare weight: ``elderly_welfare_multiplier`` for the elderly living alone, 1 otherwise);
2. ``model.agents.shuffle_do("step")``: each resident draws its own incidents, one Poisson count
   per category with its own share of the cell's rate, by Knuth's method on Mesa's
   ``model.random`` (Poisson thinning: the cell total is the same Poisson law as the
   vectorised "cell total, then a uniformly chosen resident"). It is the
   victim of those with a victim; a public-safety victim loses ``victim_drop`` of perceived
   safety at once (clipped at 0); for each non-latent incident it calls the hotline with
   probability ``min(1, victim_report_prob x propensity)``, propensity = ``(trust / 0.5) **
   elasticity x party multiplier x (1 + (report_boost - 1) decay ** (day - boost_day))``; it
   adds the incident's ``safety_impact`` to its exposure;
3. the model loops over its agents to build the cell sums of perceived safety and exposure
   (the start-of-day state, today's victimisations included, as in ``SafetyModel.update``);
4. ``model.agents.do("update_safety")``: each resident reads its Moore neighbourhood's sums
   (cells from the Mesa ``OrthogonalMooreGrid`` it lives on) and applies
   ``s <- (1 - spread) [(1 - relax) s + relax b + delta_c] + spread N_c``, clipped to [0, 1],
   with ``delta_c = (-exposure_drop E_c - disorder_drop D_c + guardian_gain G_c) / (residents of
   the cell / 100)``.

The model is built from a built (and possibly warmed-up) ``GovernanceModel``: city arrays,
resident attributes and parameters are copied from it, so both start from identical inputs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import mesa
import numpy as np
from mesa.discrete_space import CellAgent, OrthogonalMooreGrid

from sim.incidents import CAT, N_CAT, arrival_rates


# --------------------------------------------------------------------------- fixed inputs
@dataclass(frozen=True)
class DayInputs:
    """Cell-level inputs of the residents' update that other parts of the model produce.

    Both implementations take them as given and hold them fixed over the compared days.

    Attributes:
        deter: (n_cells,) ``exp(-deterrence_per_visit x guardian presence)``.
        disorder_nb: (n_cells,) visibility-weighted open latent problems in the cell and its Moore
            neighbours (broken-windows factor on arrival rates).
        disorder_cell: (n_cells,) visibility- and safety-impact-weighted open latent problems in
            the cell (perceived safety).
        guardians: (n_cells,) guardian visits per day.
    """

    deter: np.ndarray
    disorder_nb: np.ndarray
    disorder_cell: np.ndarray
    guardians: np.ndarray


def snapshot_inputs(model) -> DayInputs:
    """The day inputs as the GovernanceModel ``model`` would use them for its next day:
    deterrence from its guardian presence, disorder from its open latent problems, and the
    guardian visits of its last day (zeros before the first day)."""
    cfg = model.config
    deter = np.exp(-cfg.dynamics.deterrence_per_visit * model.patrols.presence)
    disorder_nb, disorder_cell = model._disorder()
    today = model.patrols.today
    if today is None:
        guardians = np.zeros(model.city.n_cells)
    else:
        guardians = today.guardians(cfg.dynamics.community_volunteer_guardian_weight)
    return DayInputs(deter.copy(), disorder_nb.copy(), disorder_cell.copy(),
                     np.array(guardians, dtype=float))


def cell_rates(population: np.ndarray, risk: np.ndarray, cp, inputs: DayInputs,
               urban: np.ndarray | None = None) -> np.ndarray:
    """(n_categories, n_cells) expected background incidents per cell per day: the model's own
    formula (``sim.incidents.arrival_rates``) on the day's deterrence and disorder."""
    return arrival_rates(population, risk, cp, inputs.deter, inputs.disorder_nb, urban=urban)


# --------------------------------------------------------------------------- agents
class NaiveResident(CellAgent):
    """One resident with its own state, stepped one at a time."""

    def __init__(self, model: NaiveResidentModel, cell, home: int, baseline: float, safety: float,
                 trust: float, party_mult: float, boost_day: float, elderly_alone: bool):
        super().__init__(model)
        self.cell = cell                  # Mesa discrete-space cell (placement)
        self.home = home                  # its index, y * width + x, as in sim.city
        self.baseline = baseline
        self.safety = safety
        self.trust = trust
        self.party_mult = party_mult
        self.boost_day = boost_day        # day of the last visible fix of its report (-inf: never)
        self.elderly_alone = elderly_alone
        self.exposure = 0.0               # safety-weighted non-latent incidents it suffered today
        self.victimisations = 0
        self.reports_made = 0
        self.last_event_day = -1

    def propensity(self, day: float) -> float:
        """Hotline reporting propensity: (trust / 0.5) ** elasticity x party multiplier x
        feedback boost."""
        m = self.model
        boost = 1.0 + m.boost_extra * m.boost_decay ** (day - self.boost_day)
        return (self.trust / 0.5) ** m.elasticity * self.party_mult * boost

    def step(self) -> None:
        """Today's incidents: draw them, suffer them, perhaps call the hotline."""
        m = self.model
        self.exposure = 0.0
        c = self.home
        p0 = m.p0_elderly[c] if self.elderly_alone else m.p0[c]
        rand = m.random.random
        for k in range(N_CAT):
            # Poisson(lam_k) by Knuth's product of uniforms; p0[k] = exp(-lam_k). Rates per
            # person-day are ~1e-6, so almost always one uniform and no incident.
            u = rand()
            if u <= p0[k]:
                continue
            n = 0
            while u > p0[k]:
                n += 1
                u *= rand()
            self._suffer(k, n)

    def _suffer(self, k: int, n: int) -> None:
        """``n`` incidents of category ``k`` happened to this resident today."""
        m = self.model
        day = m.day
        m.arrivals[k] += n
        if k == m.welfare and self.elderly_alone:
            m.welfare_elderly += n
        if k == m.ps:  # public-safety victim: feels it at once
            for _ in range(n):
                self.safety = max(0.0, self.safety - m.victim_drop)
                self.victimisations += 1
                self.last_event_day = day
        if not m.latent[k]:
            self.exposure += m.safety_impact[k] * n
            p = min(1.0, m.victim_report_prob[k] * self.propensity(day))
            for _ in range(n):
                m.nonlatent[k] += 1
                if m.random.random() < p:
                    m.calls[k] += 1
                    self.reports_made += 1
                    self.last_event_day = day

    def update_safety(self) -> None:
        """Relaxation, exposure, disorder, guardians and spread from the start-of-day
        neighbourhood mean; clip to [0, 1]."""
        m = self.model
        c = self.home
        per100 = m.per100[c]
        delta = (-m.exposure_drop * m.cell_exposure[c] - m.disorder_drop * m.disorder_cell[c]
                 + m.guardian_gain * m.guardians[c]) / per100
        tot = 0.0
        cnt = 0
        for j in m.nbhd[c]:
            tot += m.cell_safety[j]
            cnt += m.cell_count[j]
        nmean = tot / cnt
        sg, r = m.spread, m.relax
        s = (1.0 - sg) * ((1.0 - r) * self.safety + r * self.baseline + delta) + sg * nmean
        self.safety = min(1.0, max(0.0, s))
        m.safety_total += self.safety


# --------------------------------------------------------------------------- model
class NaiveResidentModel(mesa.Model):
    """Residents of a ``GovernanceModel`` as individual Mesa agents; ``step()`` is one day.

    Args:
        gov: a built ``GovernanceModel``; its city, residents' current state and parameters are
            copied (nothing of it is modified). Its population scale must be 1.
        inputs: the fixed day inputs (default: :func:`snapshot_inputs` of ``gov``).
        rng: seed of this model's random draws (residents draw from Mesa's ``model.random``,
            which also shuffles them).

    Days are numbered on from ``gov``: the first step is day ``gov.day + 1``.
    """

    def __init__(self, gov, inputs: DayInputs | None = None, rng=None):
        super().__init__(rng=rng)
        cfg = gov.config
        if cfg.population.scale != 1:
            raise ValueError("the naive reference needs population.scale == 1 (one agent per person)")
        city = gov.city
        res = gov.residents
        cp = gov.cat
        self.inputs = snapshot_inputs(gov) if inputs is None else inputs
        self.day0 = gov.day + 1
        self.day = self.day0 - 1
        self.width, self.height = city.width, city.height
        n_cells = city.n_cells
        self.n_cells = n_cells
        self.city_population = city.population.astype(np.float64)
        self.city_risk = city.risk.astype(np.float64)
        self.city_urban = city.urban
        # parameters
        s = cfg.safety
        self.relax = float(s.relax_per_day)
        self.spread = float(s.spread_per_day)
        self.victim_drop = float(s.victim_drop)
        self.exposure_drop = float(s.exposure_drop)
        self.disorder_drop = float(s.disorder_drop)
        self.guardian_gain = float(s.guardian_gain)
        self.elasticity = float(cfg.channels.hotline.trust_elasticity)
        self.boost_extra = float(cfg.feedback.report_boost - 1.0)
        self.boost_decay = float(math.exp(-1.0 / cfg.feedback.boost_memory_days))
        self.welfare_mult = float(cfg.population.elderly_welfare_multiplier)
        self.ps = CAT["public_safety"]
        self.welfare = CAT["welfare"]
        if any(not lat and not hv for lat, hv in zip(cp.latent, cp.has_victim, strict=True)):
            raise ValueError("the naive reference assumes every non-latent category has a victim")
        self.cp = copy.deepcopy(cp)  # category parameters (arrays), for the cell rates
        self.latent = [bool(x) for x in cp.latent]
        self.has_victim = [bool(x) for x in cp.has_victim]
        self.safety_impact = [float(x) for x in cp.safety_impact]
        self.victim_report_prob = [float(x) for x in cp.victim_report_prob]
        # fixed cell inputs, as Python lists (read one element at a time)
        self.disorder_cell = self.inputs.disorder_cell.tolist()
        self.guardians = self.inputs.guardians.tolist()

        # space: the lattice as a Mesa grid; cell index = y * width + x as in sim.city
        self.grid = OrthogonalMooreGrid((city.width, city.height), torus=False, random=self.random)
        cells = [None] * n_cells
        for cell in self.grid.all_cells:
            x, y = cell.coordinate
            cells[y * city.width + x] = cell
        self.cells = cells
        # each cell's Moore neighbourhood (itself first) as indices, read from the Mesa grid
        self.nbhd = []
        for c in range(n_cells):
            nb = [c]
            for other in cells[c].neighborhood:
                x, y = other.coordinate
                nb.append(y * city.width + x)
            self.nbhd.append(nb)

        # residents: one agent per person, copied from the GovernanceModel's arrays
        home = res.home.tolist()
        baseline = res.baseline.astype(np.float64).tolist()
        safety = res.safety.astype(np.float64).tolist()
        trust = res.trust.astype(np.float64).tolist()
        party = res.party_mult.astype(np.float64).tolist()
        boost_day = res.boost_day.astype(np.float64).tolist()
        elderly = res.elderly_alone.tolist()
        for i in range(res.n):
            h = home[i]
            NaiveResident(self, cells[h], h, baseline[i], safety[i], trust[i], party[i],
                          boost_day[i], elderly[i])
        # residents per cell and per 100 (counted from the agents)
        count = [0] * n_cells
        for a in self.agents:
            count[a.home] += 1
        self.cell_count = count
        wsum = [0.0] * n_cells  # welfare weight of the cell's residents
        for a in self.agents:
            wsum[a.home] += self.welfare_mult if a.elderly_alone else 1.0
        self.cell_welfare_weight = wsum
        self.per100 = [max(k, 1) / 100.0 for k in count]
        self.cell_safety = [0.0] * n_cells
        self.cell_exposure = [0.0] * n_cells
        self.p0: list[list[float]] = []
        self.p0_elderly: list[list[float]] = []
        # outcomes
        self.arrivals = [0] * N_CAT
        self.welfare_elderly = 0          # welfare incidents whose subject is elderly, alone
        self.nonlatent = [0] * N_CAT
        self.calls = [0] * N_CAT
        self.safety_total = 0.0
        self.daily: list[dict] = []

    # ------------------------------------------------------------------ environment
    def _resident_rates(self) -> None:
        """Each cell's expected incidents today, shared among its residents (per-person
        thinning), as the chance of none today per category: ``p0[c]`` for a resident with
        welfare weight 1, ``p0_elderly[c]`` for an elderly resident living alone."""
        rate = cell_rates(self.city_population, self.city_risk, self.cp, self.inputs, self.city_urban)
        count = np.asarray(self.cell_count, dtype=np.float64)
        wsum = np.asarray(self.cell_welfare_weight, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(count > 0, rate / count, 0.0)
            w1 = np.where(wsum > 0, rate[self.welfare] / wsum, 0.0)
        lam = per.T.copy()
        lam[:, self.welfare] = w1
        lam_e = lam.copy()
        lam_e[:, self.welfare] = w1 * self.welfare_mult
        # what each resident needs: P(no incident of category k today) = exp(-lam_k)
        self.p0 = np.exp(-lam).tolist()
        self.p0_elderly = np.exp(-lam_e).tolist()

    # ------------------------------------------------------------------ one day
    def step(self) -> None:
        """One day of the residents' update."""
        self.day = self.day0 + self.steps - 1
        arrivals0, calls0, nonlat0 = list(self.arrivals), list(self.calls), list(self.nonlatent)
        eld0 = self.welfare_elderly
        self._resident_rates()
        self.agents.shuffle_do("step")
        # start-of-day cell aggregates, built from the agents
        cs = [0.0] * self.n_cells
        ce = [0.0] * self.n_cells
        for a in self.agents:
            cs[a.home] += a.safety
            ce[a.home] += a.exposure
        self.cell_safety = cs
        self.cell_exposure = ce
        self.safety_total = 0.0
        self.agents.do("update_safety")
        self.daily.append({
            "day": self.day,
            "arrivals": [a - b for a, b in zip(self.arrivals, arrivals0, strict=True)],
            "nonlatent": [a - b for a, b in zip(self.nonlatent, nonlat0, strict=True)],
            "calls": [a - b for a, b in zip(self.calls, calls0, strict=True)],
            "welfare_elderly": self.welfare_elderly - eld0,
            "mean_safety": self.safety_total / len(self.agents),
        })

    def safety_values(self) -> np.ndarray:
        """Every resident's perceived safety (in the order the agents were created, which is the
        GovernanceModel's resident order)."""
        return np.array([a.safety for a in self.agents], dtype=np.float64)
