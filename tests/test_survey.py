"""The survey's answer model (issue 10, item 9): a respondent answers "safe" when
``s + bias + e > threshold``, ``e ~ Normal(0, sd)``, so where people feel safe the share can
exceed 99%, and the share answering "unsafe" is the share of residents near or below the
threshold. Checked against the normal distribution function with binomial tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim.agents import ResidentPopulation
from sim.city import city_from_scenario
from sim.safety import SafetyModel, expected_share_safe, p_answer_safe
from sim.scenario import load_scenario

SMALL = {"city.width": 20, "city.height": 20, "city.population": 20_000,
         "admin.townships": 2, "admin.communities": 4, "grids.count": 30}


def _survey_model(**overrides):
    cfg = load_scenario(None, {**SMALL, "safety.survey_sample": 20_000, **overrides})
    city = city_from_scenario(cfg, np.random.default_rng(7), np.random.default_rng(8))
    res = ResidentPopulation(cfg, city.population, np.random.default_rng(9))
    return cfg, res, SafetyModel(cfg.safety, city, res)


def _answers(s: SafetyModel, waves: int) -> tuple[int, int]:
    out = [s.survey(30 * (k + 1), np.random.default_rng(100 + k)) for k in range(waves)]
    return sum(round(w.share_safe * w.n) for w in out), sum(w.n for w in out)


def _inside_binomial(yes: int, n: int, p: float, level: float = 0.999) -> bool:
    lo, hi = stats.binom.interval(level, n, p)
    return lo <= yes <= hi


@pytest.mark.parametrize("level", [0.95, 0.65])
def test_everyone_at_one_level_answers_safe_with_the_normal_probability(level):
    _, res, s = _survey_model(**{"safety.survey_safe_threshold": 0.6,
                                 "safety.survey_answer_sd": 0.1})
    res.safety[:] = level
    yes, n = _answers(s, 5)
    p = float(stats.norm.cdf((level - 0.6) / 0.1))   # 0.99977 and 0.691
    assert _inside_binomial(yes, n, p)
    # the old answer model ("yes" with probability s) is rejected at the same sample size
    assert not _inside_binomial(yes, n, level)


def test_residents_at_mixed_levels_give_the_mixture():
    cfg, res, s = _survey_model(**{"safety.survey_safe_threshold": 0.6,
                                   "safety.survey_answer_sd": 0.1})
    levels = np.array([0.45, 0.55, 0.75, 0.95], dtype=np.float32)
    res.safety[:] = levels[np.arange(res.n) % 4]
    p = float(stats.norm.cdf((levels - 0.6) / 0.1).mean())
    assert expected_share_safe(res.safety, cfg.safety) == pytest.approx(p, rel=1e-5)
    yes, n = _answers(s, 5)
    assert _inside_binomial(yes, n, p)
    assert not _inside_binomial(yes, n, float(levels.mean()))


def test_without_noise_the_answer_is_a_step_at_the_threshold():
    cfg, res, s = _survey_model(**{"safety.survey_safe_threshold": 0.7,
                                   "safety.survey_answer_sd": 0.0,
                                   "safety.survey_nonresponse_bias": 0.05})
    res.safety[:] = np.where(np.arange(res.n) < res.n // 4, 0.6, 0.9).astype(np.float32)
    wave = s.survey(30, np.random.default_rng(0))
    assert wave.n == res.n
    assert wave.share_safe == 1 - (res.n // 4) / res.n      # 0.6 + 0.05 < 0.7 < 0.9 + 0.05
    np.testing.assert_array_equal(p_answer_safe(np.array([0.64, 0.66]), cfg.safety), [0.0, 1.0])
    assert wave.ci_low <= wave.share_safe <= wave.ci_high


def test_a_population_that_feels_safe_passes_99_percent():
    """At the default baseline (mean 0.985) with nobody victimised, the defaults answer
    "safe" far above 99%: the old answer model could not exceed the mean of s."""
    _, res, s = _survey_model()
    yes, n = _answers(s, 2)
    assert res.safety.mean() < 0.99   # what the old model would have answered, on average
    assert yes / n > 0.999
