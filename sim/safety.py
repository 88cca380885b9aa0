"""Perceived safety and the simulated phone survey (DESIGN.md section 7).

Each resident's perceived safety ``s`` in [0, 1] is updated once a day, for all residents at
once (numpy over the resident arrays), in this order:

1. relaxation towards the resident's own baseline ``b``: ``s += relax * (b - s)``;
2. exposure: ``s -= exposure_drop * E_c`` where ``E_c`` is today's non-latent incidents in the
   home cell, weighted by their category's ``safety_impact``, per 100 residents;
3. disorder: ``s -= disorder_drop * D_c`` with ``D_c`` the visible unresolved problems in the
   cell (weighted by visibility and ``safety_impact``) per 100 residents;
4. guardians: ``s += guardian_gain * G_c`` with ``G_c`` today's guardian visits per 100
   residents;
5. victimisation (already applied when it happened: ``s -= victim_drop``) and good feedback
   (``s += feedback_gain``, applied by the dispatcher);
6. spread between neighbours: ``s += spread * (N_c - s)``, ``N_c`` the population-weighted mean
   over the home cell and its Moore neighbours at the start of the day (fear is contagious
   and outlasts the crime);
7. clipping to [0, 1].

Steps 1-4 and 6 combine into ``s <- (1 - spread) [(1 - relax) s + relax b + delta_c] + spread
N_c``: per resident one scaling, one add and one gathered add, with per-cell sums from
``np.add.reduceat`` over the residents sorted by home cell, so a day costs a few passes over
the resident arrays whatever the city's size.

Victimisation is an event that happens to one person. A resident agent stands for
``population.scale`` people, so the victim agent is hit ``scale`` times as often as one person:
the agent's own state changes with probability ``1 / scale`` per event
(:meth:`~sim.agents.ResidentPopulation.represented`), so that each agent lives the history of one
of its people and every share and mean over agents estimates the same quantity at any scale.

The survey samples ``survey_sample`` resident agents uniformly (the way the provincial phone
survey samples people; each agent stands for the same number of people) and asks whether they
feel safe. The answer is a threshold model: a respondent answers "safe" when
``s + bias + e > survey_safe_threshold`` with ``e ~ Normal(0, survey_answer_sd)``, so a
population that feels safe answers almost all "safe" and the share answering "unsafe" is the
share of residents whose perceived safety is near or below the threshold
(:func:`p_answer_safe`). The share answering yes has a Wilson 95% interval: at 95-99% the
differences between scenarios are small and must be read with that interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from sim.agents import ResidentPopulation
    from sim.city import City
    from sim.scenario import SafetyConfig


@dataclass(frozen=True)
class SurveyResult:
    day: int
    n: int
    share_safe: float
    ci_low: float
    ci_high: float


def p_answer_safe(safety: np.ndarray, config: SafetyConfig) -> np.ndarray:
    """Probability that a resident with perceived safety ``safety`` answers "safe":
    ``Phi((s + bias - threshold) / sd)`` (a step at the threshold when ``sd`` is 0).

    Args:
        safety: perceived safety of each respondent, [0, 1].
        config: the scenario's ``safety`` section (``survey_safe_threshold``,
            ``survey_answer_sd``, ``survey_nonresponse_bias``).
    """
    margin = np.asarray(safety, dtype=np.float64) + config.survey_nonresponse_bias - config.survey_safe_threshold
    if config.survey_answer_sd <= 0:
        return (margin > 0).astype(np.float64)
    return stats.norm.cdf(margin / config.survey_answer_sd)


def expected_share_safe(safety: np.ndarray, config: SafetyConfig) -> float:
    """The share of all residents who would answer "safe" (what a survey wave estimates)."""
    return float(p_answer_safe(safety, config).mean()) if len(safety) else float("nan")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (good coverage near 0 and 1, where the
    normal approximation fails)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


class SafetyModel:
    """Daily update of every resident's perceived safety, and survey waves."""

    def __init__(self, config: SafetyConfig, city: City, residents: ResidentPopulation):
        """Args:
            config: the scenario's ``safety`` section.
            city: the lattice (Moore neighbourhoods for the spread of fear).
            residents: the resident population whose ``safety`` array this model updates.
        """
        self.config = config
        self.residents = residents
        res = residents
        cfg = config
        # Moore neighbourhood including the cell itself, for the spread term.
        nb = city.neighbours
        nb9 = np.concatenate([np.arange(city.n_cells)[:, None], nb], axis=1)
        self._nb_valid = nb9 >= 0
        self._nb_idx = np.where(self._nb_valid, nb9, 0)
        # per 100 people living in the cell (not agents x scale: a rounded agent count would
        # make a sparse cell's exposure depend on the scale)
        self.per100 = np.maximum(res.people, 1.0) / 100.0
        cnt = res.per_cell.astype(np.float64)
        self._nb_cnt = np.where(self._nb_valid, cnt[self._nb_idx], 0.0).sum(axis=1)
        # s <- (1 - spread)[(1 - relax) s + relax b + delta_cell] + spread N_cell, rearranged so
        # the per-resident work is: one scale, one add of a constant array, one gathered add.
        r, sg = cfg.relax_per_day, cfg.spread_per_day
        self._scale = np.float32((1 - sg) * (1 - r))
        self._fixed = ((1 - sg) * r * res.baseline).astype(np.float32)
        self.cell_sum = res.cell_sum(res.safety)
        self.surveys: list[SurveyResult] = []

    def neighbourhood_mean(self) -> np.ndarray:
        """Population-weighted mean perceived safety over each cell and its Moore neighbours,
        from the current cell sums."""
        tot = np.where(self._nb_valid, self.cell_sum[self._nb_idx], 0.0).sum(axis=1)
        return np.divide(tot, self._nb_cnt, out=np.zeros(len(tot)), where=self._nb_cnt > 0)

    def update(self, exposure: np.ndarray, disorder: np.ndarray, guardians: np.ndarray) -> None:
        """Apply one day's update (see the module docstring). The neighbourhood mean is taken
        from the state at the start of the day, so all residents update simultaneously.

        Args:
            exposure: (n_cells,) safety-weighted non-latent incidents today.
            disorder: (n_cells,) safety- and visibility-weighted unresolved latent problems.
            guardians: (n_cells,) guardian visits today.
        """
        cfg = self.config
        res = self.residents
        s = res.safety
        delta = (
            -cfg.exposure_drop * exposure / self.per100
            - cfg.disorder_drop * disorder / self.per100
            + cfg.guardian_gain * guardians / self.per100
        )
        sg = cfg.spread_per_day
        # spread uses the start-of-day neighbourhood (victimisations of today already included)
        self.cell_sum = res.cell_sum(s)
        cell_term = ((1 - sg) * delta + sg * self.neighbourhood_mean()).astype(np.float32)
        s *= self._scale
        s += self._fixed
        s += cell_term[res.home]
        np.clip(s, 0.0, 1.0, out=s)
        self.cell_sum = res.cell_sum(s)

    def mean(self) -> float:
        """Mean perceived safety over residents (from the cell sums: no extra pass)."""
        n = self.residents.n
        return float(self.cell_sum.sum() / n) if n else float("nan")

    def victimise(self, residents: np.ndarray, day: int) -> None:
        """Victims' perceived safety falls sharply (by ``victim_drop``); they remember it.

        Each entry is one victimised person among the people the agent stands for; the
        agent's perceived safety falls with probability ``1 / scale`` per entry (up to the
        rounding of its cell's agents; :meth:`~sim.agents.ResidentPopulation.represented`), so
        the expected fall of the mean
        and the share of residents feeling unsafe do not depend on ``population.scale``. The
        counters (``victimisations``, ``last_event_day``) record every event.
        """
        residents = residents[residents >= 0]
        if len(residents) == 0:
            return
        res = self.residents
        np.add.at(res.victimisations, residents, 1)
        res.last_event_day[residents] = day
        hit = residents[res.represented(residents, day)]
        if len(hit) == 0:
            return
        drop = self.config.victim_drop
        np.subtract.at(res.safety, hit, np.float32(drop))
        np.clip(res.safety, 0.0, 1.0, out=res.safety)

    def survey(self, day: int, rng: np.random.Generator) -> SurveyResult:
        """One survey wave: sample residents without replacement and ask whether they feel
        safe; each answers "safe" when ``s + bias + e > survey_safe_threshold``,
        ``e ~ Normal(0, survey_answer_sd)`` (see :func:`p_answer_safe`)."""
        cfg = self.config
        res = self.residents
        n = min(cfg.survey_sample, res.n)
        if n == 0:
            out = SurveyResult(day, 0, float("nan"), float("nan"), float("nan"))
        else:
            who = rng.choice(res.n, size=n, replace=False)
            latent = (res.safety[who].astype(np.float64) + cfg.survey_nonresponse_bias
                      + cfg.survey_answer_sd * rng.standard_normal(n))
            yes = int((latent > cfg.survey_safe_threshold).sum())
            lo, hi = wilson_interval(yes, n)
            out = SurveyResult(day, n, yes / n, lo, hi)
        self.surveys.append(out)
        return out
