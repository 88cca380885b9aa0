"""Arrivals against theory (DESIGN.md sections 4 and 10).

* Background arrivals are Poisson: per cell, counts summed over days follow the configured
  rate (population x base rate x risk); daily totals have dispersion index 1; occurrence times
  are uniform within the day. Checked through the model and, more sharply, on
  :func:`sim.incidents.background_arrivals` with a synthetic rate matrix.
* Near repeats form a Hawkes process in cluster form: Poisson(eta) direct offspring per
  incident, exponential delays with mean ``near_repeat_days``, in the same cell with
  probability ``near_repeat_same_cell`` else a uniformly chosen Moore neighbour; the triggered
  to background ratio is eta / (1 - eta).

Every check uses a fixed seed and a tolerance derived from the sampling law (stated next to
it); p-value tests use a 0.001 level, so a correct model passes at a random seed with
probability >= 0.999 per check.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln

from sim.incidents import background_arrivals
from sim.model import GovernanceModel

ALPHA = 1e-3
Z = 4.0  # |N(0,1)| > 4 has probability 6e-5: the bound for normal-approximation checks

# --------------------------------------------------------------------------- helpers


def _poisson_two_sided_p(observed: int, mean: float) -> float:
    """Two-sided p-value of an observed Poisson count (doubling the smaller tail)."""
    lo = stats.poisson.cdf(observed, mean)
    hi = stats.poisson.sf(observed - 1, mean)
    return float(min(1.0, 2.0 * min(lo, hi)))


def _binned(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0):
    """Cells with expected count >= min_expected kept as bins; the rest pooled into one
    bin (the usual validity condition of the chi-square approximation)."""
    big = expected >= min_expected
    obs = list(observed[big])
    exp = list(expected[big])
    if (~big).any():
        obs.append(observed[~big].sum())
        exp.append(expected[~big].sum())
    return np.asarray(obs, float), np.asarray(exp, float)


def _conditional_chisquare_p(observed: np.ndarray, expected: np.ndarray) -> float:
    """Given the total, Poisson counts are multinomial with cell shares expected/sum: the
    Pearson statistic is chi-square with (bins - 1) degrees of freedom."""
    obs, exp = _binned(observed, expected)
    assert len(obs) >= 10, "too few bins for a meaningful test"
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


def _dispersion_bounds(n: int) -> tuple[float, float]:
    """Poisson dispersion test: sum (X - mean)^2 / mean over n i.i.d. Poisson counts is
    approximately chi-square(n - 1); the index var/mean = statistic / (n - 1)."""
    lo = stats.chi2.ppf(ALPHA / 2, n - 1) / (n - 1)
    hi = stats.chi2.ppf(1 - ALPHA / 2, n - 1) / (n - 1)
    return lo, hi


# --------------------------------------------------------------------------- background, direct


def _synthetic_rates() -> np.ndarray:
    rng = np.random.default_rng(2024)
    n_cells = 64
    rate = np.zeros((3, n_cells))
    rate[0] = rng.gamma(2.0, 0.5, n_cells)  # mean 1 per cell-day, heterogeneous
    rate[0, rng.choice(n_cells, 10, replace=False)] = 0.0
    # category 1: never occurs; category 2: a single cell
    rate[2, 17] = 3.0
    return rate


@pytest.fixture(scope="module")
def direct_draws():
    rate = _synthetic_rates()
    days = 2000
    rng = np.random.default_rng(7)
    counts = np.zeros((days, *rate.shape), dtype=np.int64)
    frac = []
    for d in range(days):
        cat, cell, t = background_arrivals(rate, d, rng)
        # contract of one call
        assert cat.dtype == np.int8 and cell.dtype == np.int32
        assert len(cat) == len(cell) == len(t)
        assert np.all(np.diff(t) >= 0), "times must be sorted"
        assert np.all((t >= d) & (t < d + 1)), "times must fall within the day"
        np.add.at(counts[d], (cat.astype(np.int64), cell.astype(np.int64)), 1)
        frac.append(t - d)
    return rate, counts, np.concatenate(frac)


def test_background_arrivals_zero_rates_never_occur(direct_draws):
    rate, counts, _ = direct_draws
    total = counts.sum(axis=0)
    assert total[rate == 0].sum() == 0
    assert total[1].sum() == 0
    assert total[2].sum() == total[2, 17] > 0


def test_background_arrivals_cell_counts_fit_rates(direct_draws):
    rate, counts, _ = direct_draws
    days = counts.shape[0]
    total = counts.sum(axis=0)
    exp = rate[0] * days
    pos = exp > 0
    assert _conditional_chisquare_p(total[0][pos], exp[pos]) > ALPHA
    for k in (0, 2):
        assert _poisson_two_sided_p(int(total[k].sum()), rate[k].sum() * days) > ALPHA


def test_background_arrivals_daily_counts_are_poisson_per_cell(direct_draws):
    """Poisson splitting makes each cell's daily count Poisson(rate): with known rates,
    S = sum_{cells, days} (X - r)^2 / r has mean D k and variance D sum_c (2 + 1/r_c)
    (fourth central moment of a Poisson: r + 3 r^2). A fixed daily total, or a shared
    draw between cells, would move S far outside Z standard deviations."""
    rate, counts, _ = direct_draws
    days = counts.shape[0]
    r = rate[0]
    pos = r > 0
    x = counts[:, 0, pos]
    s = ((x - r[pos]) ** 2 / r[pos]).sum()
    mean = days * pos.sum()
    sd = np.sqrt(days * (2.0 + 1.0 / r[pos]).sum())
    assert abs(s - mean) < Z * sd, (s, mean, sd)
    # and the category total per day: dispersion index 1 within the chi-square interval
    tot = counts[:, 0, :].sum(axis=1)
    lo, hi = _dispersion_bounds(days)
    assert lo < tot.var(ddof=1) / tot.mean() < hi


def test_background_arrivals_times_uniform_within_day(direct_draws):
    _, _, frac = direct_draws
    assert stats.kstest(frac, "uniform").pvalue > ALPHA


# --------------------------------------------------------------------------- background, model

BG_DAYS = 250
BG_PER_DAY = 40.0


@pytest.fixture(scope="module")
def background_model(small_city, only_category):
    ov = dict(small_city)
    ov.update(only_category("public_safety", BG_PER_DAY))
    # a heterogeneous risk field makes the per-cell test check that risk multiplies the rate
    ov["city.risk_sigma"] = 0.6
    ov["police.response_servers_per_officer"] = 0.5
    m = GovernanceModel(rng=101, **ov)
    m.run(BG_DAYS)
    return m


def _model_expected_per_cell(m, days: int) -> np.ndarray:
    cfg = m.config.incidents.public_safety
    return m.city.population * m.city.risk * cfg.base_rate / 1000.0 / 365.0 * days


def test_model_only_background_incidents(background_model, day_added):
    m = background_model
    df = m.incident_table()
    assert len(df) > 0
    assert (df["origin"] == "background").all()
    assert (df["category"] == "public_safety").all()
    # each incident is appended on the day it occurs
    assert np.array_equal(np.floor(df["t_occurred"].to_numpy()).astype(int), day_added(m))


def test_model_cell_counts_fit_rate(background_model):
    m = background_model
    exp = _model_expected_per_cell(m, BG_DAYS)
    obs = np.bincount(m.incidents.view("cell"), minlength=m.city.n_cells)
    # cells without residents have rate zero and must stay empty
    assert obs[exp == 0].sum() == 0
    pos = exp > 0
    assert _conditional_chisquare_p(obs[pos], exp[pos]) > ALPHA
    # total: Poisson with mean = configured daily rate x days (risk has population-weighted
    # mean 1, so the city total does not depend on the risk draw)
    assert exp.sum() == pytest.approx(BG_PER_DAY * BG_DAYS, rel=1e-9)
    assert _poisson_two_sided_p(int(obs.sum()), exp.sum()) > ALPHA


def test_model_daily_totals_dispersion(background_model):
    daily = background_model.timeseries()["occurred"].to_numpy()
    lo, hi = _dispersion_bounds(len(daily))
    index = daily.var(ddof=1) / daily.mean()
    assert lo < index < hi, (index, lo, hi)


def test_model_occurrence_times_uniform_within_day(background_model):
    t = background_model.incidents.view("t_occurred")
    assert stats.kstest(t - np.floor(t), "uniform").pvalue > ALPHA


# --------------------------------------------------------------------------- near repeats

ETA = 0.5
TAU = 2.0       # near_repeat_days
SAME = 0.3      # near_repeat_same_cell
NR_DAYS = 300
NR_PER_DAY = 30.0
# Edge margin: a descendant in generation g lags its root by Gamma(g, TAU); beyond 30 TAU the
# expected number of missing descendants per cluster, sum_g ETA^g P(Gamma(g,1) > 30), is below
# 1e-8, and a direct child lags its parent by more than 20 TAU with probability e^-20.
ROOT_MARGIN = 30 * TAU
PARENT_MARGIN = 20 * TAU


@pytest.fixture(scope="module")
def hawkes_model(small_city, only_category):
    ov = dict(small_city)
    ov.update(only_category("public_safety", NR_PER_DAY, near_repeat_branching=ETA,
                    near_repeat_days=TAU, near_repeat_same_cell=SAME))
    ov["police.response_servers_per_officer"] = 0.5
    m = GovernanceModel(rng=202, **ov)
    m.run(NR_DAYS)
    return m


def _roots(parent: np.ndarray) -> np.ndarray:
    """Background ancestor of every incident (pointer jumping over the parent column)."""
    root = np.where(parent < 0, np.arange(len(parent)), parent)
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def test_near_repeat_parent_structure(hawkes_model):
    df = hawkes_model.incident_table()
    origin = df["origin"].to_numpy()
    parent = df["parent"].to_numpy()
    bg = origin == "background"
    assert (parent[bg] == -1).all()
    assert (parent[~bg] >= 0).all() and (origin[~bg] == "near_repeat").all()
    assert (parent[~bg] < np.flatnonzero(~bg)).all(), "a parent is logged before its child"
    assert (df["t_occurred"].to_numpy()[~bg] > df["t_occurred"].to_numpy()[parent[~bg]]).all()


def test_near_repeat_branching_ratio(hawkes_model):
    """Triggered / background -> eta / (1 - eta). Each background incident roots a
    Galton-Watson cluster with Poisson(eta) offspring: total progeny has mean 1/(1-eta) and
    variance eta/(1-eta)^3, so the mean number of triggered incidents per root has standard
    error sqrt(eta/(1-eta)^3 / n_roots). Roots within ROOT_MARGIN of the end are excluded
    (their clusters are cut off by the end of the run)."""
    m = hawkes_model
    df = m.incident_table()
    parent = df["parent"].to_numpy()
    t = df["t_occurred"].to_numpy()
    root = _roots(parent)
    size = np.bincount(root, minlength=len(df))
    bg = parent < 0
    eligible = bg & (t < NR_DAYS - ROOT_MARGIN)
    n_roots = int(eligible.sum())
    triggered_per_root = size[eligible] - 1
    ratio = triggered_per_root.mean()
    expected = ETA / (1 - ETA)
    se = np.sqrt(ETA / (1 - ETA) ** 3 / n_roots)
    assert abs(ratio - expected) < Z * se, (ratio, expected, se, n_roots)
    # The cluster-size variance itself: total progeny is Borel(eta) distributed (variance
    # eta/(1-eta)^3); the sample variance has sd sqrt((mu4 - var^2) / n) with the fourth
    # central moment mu4 computed from the Borel pmf P(n) = e^{-eta n} (eta n)^{n-1} / n!.
    size_n = np.arange(1, 5000)
    pmf = np.exp(-ETA * size_n + (size_n - 1) * np.log(ETA * size_n) - gammaln(size_n + 1))
    var = ETA / (1 - ETA) ** 3
    mu4 = (pmf * (size_n - 1 / (1 - ETA)) ** 4).sum()
    sd_var = np.sqrt((mu4 - var**2) / n_roots)
    assert abs(triggered_per_root.var(ddof=1) - var) < Z * sd_var


def test_near_repeat_direct_offspring_are_poisson_eta(hawkes_model):
    """Each incident has Poisson(eta) direct children: for n parents the mean has sd
    sqrt(eta/n) and the sample variance sd sqrt((eta + 2 eta^2)/n) (Poisson fourth central
    moment eta + 3 eta^2). Parents within PARENT_MARGIN of the end are excluded."""
    m = hawkes_model
    df = m.incident_table()
    parent = df["parent"].to_numpy()
    t = df["t_occurred"].to_numpy()
    kids = np.bincount(parent[parent >= 0], minlength=len(df))
    eligible = t < NR_DAYS - PARENT_MARGIN
    k = kids[eligible]
    n = len(k)
    assert abs(k.mean() - ETA) < Z * np.sqrt(ETA / n)
    assert abs(k.var(ddof=1) - ETA) < Z * np.sqrt((ETA + 2 * ETA**2) / n)


def test_near_repeat_delays_exponential(hawkes_model):
    """Delays child - parent ~ Exponential(mean TAU): the mean has sd TAU/sqrt(n), and a KS
    test against the exponential law at level ALPHA."""
    m = hawkes_model
    df = m.incident_table()
    parent = df["parent"].to_numpy()
    t = df["t_occurred"].to_numpy()
    child = np.flatnonzero((parent >= 0))
    child = child[t[parent[child]] < NR_DAYS - PARENT_MARGIN]
    delay = t[child] - t[parent[child]]
    n = len(delay)
    assert n > 1000
    assert abs(delay.mean() - TAU) < Z * TAU / np.sqrt(n)
    assert stats.kstest(delay, "expon", args=(0, TAU)).pvalue > ALPHA


def test_near_repeat_cells(hawkes_model):
    """Same cell with probability SAME (binomial sd sqrt(p(1-p)/n)); otherwise one of the
    parent's Moore neighbours, uniformly: for parents with all 8 neighbours, a chi-square test
    of the 8 directions at level ALPHA."""
    m = hawkes_model
    city = m.city
    df = m.incident_table()
    parent = df["parent"].to_numpy()
    cell = df["cell"].to_numpy()
    child = np.flatnonzero(parent >= 0)
    pc, cc = cell[parent[child]], cell[child]
    same = pc == cc
    n = len(child)
    assert abs(same.mean() - SAME) < Z * np.sqrt(SAME * (1 - SAME) / n)
    nb = city.neighbours[pc[~same]]
    hit = nb == cc[~same][:, None]
    assert hit.any(axis=1).all(), "a moved near repeat must land in a Moore neighbour"
    interior = (nb >= 0).all(axis=1)
    direction = np.argmax(hit[interior], axis=1)
    obs = np.bincount(direction, minlength=8)
    assert obs.min() > 50
    assert stats.chisquare(obs).pvalue > ALPHA


def test_near_repeat_offspring_added_on_the_day_they_occur(hawkes_model, day_added):
    m = hawkes_model
    t = m.incidents.view("t_occurred")
    assert np.array_equal(np.floor(t).astype(np.int64), day_added(m))
