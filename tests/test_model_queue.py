"""The dispatch queue through the whole model against Erlang C (DESIGN.md section 10).

A configuration in which the police handling pool is exactly an M/M/c queue:

* arrivals: only ``public_safety`` occurs, background only (no near repeats, deterrence,
  broken windows or dispute escalation), at 200 a day city-wide: a Poisson process in time;
* every victim calls at once: ``victim_report_prob = 1`` and the hotline propensity is exactly
  1 (trust 0.5 for everyone, no party households; feedback can only raise trust, and the
  probability is capped at 1), latency 0, triage delay 0, every other channel off; so each
  incident reaches the police pool at its occurrence time;
* service: exponential, mean 0.1 day, police speed 1, success probability 1 (one attempt),
  no travel time (response speed set so high that travel is ~1e-12 days);
* FIFO: severity sigma 0 gives every case the same priority;
* one county, one police pool with c = officers x response_servers_per_officer = 25 servers;
* fusion off (it would add the joint success bonus, harmless here, and grid beats).

Load: lambda = 200/day, mu = 10/day, offered load a = 20, rho = 0.8.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim.model import GovernanceModel
from sim.queueing import erlang_c, mmc_mean_busy, mmc_mean_wait

LAM = 200.0           # arrivals per day
MEAN_SERVICE = 0.1    # days
C = 25
WARMUP = 2            # days discarded: the queue starts empty; its relaxation time is hours
K = 20                # batches
BATCH_DAYS = 30
DAYS = WARMUP + K * BATCH_DAYS + 2  # 2 spare days so every case in the window has finished
ALPHA = 1e-3
Z = 4.0


@pytest.fixture(scope="module")
def mmc_model(small_city, only_category):
    pop = small_city["city.population"]
    ov = dict(small_city)
    ov.update(only_category(
        "public_safety", LAM, population=pop,
        victim_report_prob=1.0, severity_sigma=0.0, service_dist="exponential",
        service_mean_days=MEAN_SERVICE, success_prob=1.0,
    ))
    ov.update({
        "admin.counties": 1,
        "population.trust_sd": 0.0,
        "population.trust_mean": 0.5,
        "population.party_household_share": 0.0,
        "channels.hotline.latency_hours": 0.0,
        "channels.snap_report.enabled": False,
        "channels.grid_patrol.enabled": False,
        "channels.police_patrol.enabled": False,
        "channels.joint_screening.enabled": False,
        "channels.drone.enabled": False,
        "handling.triage_delay_hours": 0.0,
        "handling.police_speed": 1.0,
        # travel to the scene adds a deterministic time to police service; make it negligible
        # (1e-12 days) so service stays exponential
        "police.response_speed_kmh": 1e12,
        "police.officers": 500,
        "police.response_servers_per_officer": 0.05,
        "fusion.enabled": False,
        "tiers.enabled": False,
        # without fusion a public-safety case is handed between police and grid offices; not
        # here: the police pool alone must be the M/M/c queue
        "incidents.public_safety.joint": False,
    })
    m = GovernanceModel(rng=4242, **ov)
    m.run(DAYS)
    return m


def _window(m):
    df = m.incident_table()
    t = df["t_dispatched"].to_numpy()
    sel = (t >= WARMUP) & (t < WARMUP + K * BATCH_DAYS)
    return df[sel], t[sel]


def _batch_means_ok(values: np.ndarray, batch: np.ndarray, target: float) -> tuple[bool, str]:
    """Batch means: the run is cut into K batches of BATCH_DAYS (each ~6,000 cases, thousands
    of the queue's relaxation times of ~0.4 day, so batch means are close to independent);
    the mean of the batch means is compared with the target within a two-sided t-interval at
    level ALPHA with K - 1 degrees of freedom."""
    bm = np.array([values[batch == b].mean() for b in range(K)])
    se = bm.std(ddof=1) / np.sqrt(K)
    half = stats.t.ppf(1 - ALPHA / 2, K - 1) * se
    est = bm.mean()
    msg = f"estimate {est:.6g}, theory {target:.6g}, half-width {half:.3g}"
    return abs(est - target) < half, msg


@pytest.mark.slow
def test_configuration_reduces_to_mmc(mmc_model):
    m = mmc_model
    police = [p for p in m.dispatcher.pools if p.name.startswith("police")]
    assert [p.servers for p in police] == [C]
    df = m.incident_table()
    assert (df["category"] == "public_safety").all()
    assert (df["origin"] == "background").all()
    assert (df["first_channel"] == "hotline").all()
    assert (df["n_reports"] == 1).all()
    # report at occurrence, dispatched at report: the pool sees the Poisson arrival times
    assert (df["t_reported"] == df["t_occurred"]).all()
    assert (df["t_dispatched"] == df["t_reported"]).all()
    assert (df["handler"] == "police").all()
    done = df["t_ended"].notna()
    assert (df.loc[done, "attempts"] == 1).all()
    assert (df.loc[done, "state"] == "resolved").all()
    assert m.dispatcher.clamped == 0


@pytest.mark.slow
def test_arrival_rate(mmc_model):
    df, _ = _window(mmc_model)
    mean = LAM * K * BATCH_DAYS
    n = len(df)
    p = 2 * min(stats.poisson.cdf(n, mean), stats.poisson.sf(n - 1, mean))
    assert p > ALPHA, (n, mean)


@pytest.mark.slow
def test_fifo_and_exponential_service(mmc_model):
    df, t = _window(mmc_model)
    assert df["t_started"].notna().all(), "every case in the window must have finished"
    order = np.argsort(t, kind="stable")
    start = df["t_started"].to_numpy()[order]
    assert np.all(np.diff(start) >= 0), "equal priorities must be served first come first served"
    service = (df["t_ended"] - df["t_started"]).to_numpy()
    n = len(service)
    # mean of n exponentials: sd MEAN_SERVICE / sqrt(n)
    assert abs(service.mean() - MEAN_SERVICE) < Z * MEAN_SERVICE / np.sqrt(n)
    assert stats.kstest(service, "expon", args=(0, MEAN_SERVICE)).pvalue > ALPHA


@pytest.mark.slow
def test_probability_of_waiting_matches_erlang_c(mmc_model):
    df, t = _window(mmc_model)
    wait = (df["t_started"] - df["t_dispatched"]).to_numpy()
    assert (wait >= 0).all()
    batch = ((t - WARMUP) // BATCH_DAYS).astype(int)
    ok, msg = _batch_means_ok((wait > 0).astype(float), batch, erlang_c(LAM, 1 / MEAN_SERVICE, C))
    assert ok, msg


@pytest.mark.slow
def test_mean_wait_matches_mmc(mmc_model):
    df, t = _window(mmc_model)
    wait = (df["t_started"] - df["t_dispatched"]).to_numpy()
    batch = ((t - WARMUP) // BATCH_DAYS).astype(int)
    ok, msg = _batch_means_ok(wait, batch, mmc_mean_wait(LAM, 1 / MEAN_SERVICE, C))
    assert ok, msg


@pytest.mark.slow
def test_police_utilisation_matches_offered_load(mmc_model):
    """Time-average busy servers = a = lambda/mu, so utilisation = a / c (daily series from
    the model's own collector, batch means over days)."""
    u = mmc_model.timeseries()["utilisation_police"].to_numpy()
    days = np.arange(len(u))
    sel = (days >= WARMUP) & (days < WARMUP + K * BATCH_DAYS)
    batch = (days[sel] - WARMUP) // BATCH_DAYS
    ok, msg = _batch_means_ok(u[sel], batch, mmc_mean_busy(LAM, 1 / MEAN_SERVICE) / C)
    assert ok, msg
