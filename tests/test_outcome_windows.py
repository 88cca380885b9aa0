"""Closure as administrations measure it (issue 10, item 1): per 30-day period, over the cases
reported in the period, with open cases counting against the rates.

The rates are checked exactly on an event log built by hand with known report and closure
times; the model's daily windowed column is checked against the same function.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.codes import CATEGORIES, State
from sim.incidents import IncidentLog
from sim.metrics import PERIOD_DAYS, monthly, pool, window_counts

# deadlines: category 0 has 5 days, category 1 has 10, the rest 5
DEADLINES = np.array([5.0, 10.0] + [5.0] * (len(CATEGORIES) - 2))
DAYS = 95.0  # periods 0-2 complete; a case counts for on-time once its own deadline has passed

R, P, K, F, U, L = (State.RESOLVED, State.PAPER_CLOSED, State.KNOWN, State.FAILED,
                    State.UNDISCOVERED, State.LAPSED)
nan = np.nan
# (category, t_reported, state, t_closed, t_resolved): what each case tests
CASES = [
    (0, 5.0, R, 6.0, 6.0),        # period 0: closed, on time, resolved
    # period 1 (days 30-60): 8 reported (all due by day 95), 3 closed by day 60, 3 on time,
    # 2 resolved
    (0, 31.0, R, 33.0, 33.0),     # closed, on time, resolved
    (0, 32.0, P, 40.0, nan),      # closed on paper, after its 5-day deadline: not on time
    (1, 50.0, R, 58.0, 58.0),     # 10-day deadline: on time
    (0, 55.0, R, 62.0, 62.0),     # closed after the period ended and after its deadline
    (0, 59.0, R, 61.0, 61.0),     # closed after the period ended but within its deadline
    (0, 45.0, K, nan, nan),       # never closed: counts against all three
    (0, 40.0, K, 42.0, nan),      # closed on paper, reopened by a complaint: no closure in force
    (0, 35.0, F, nan, nan),       # abandoned
    (0, nan, L, nan, nan),        # never reported: not in any denominator
    (0, nan, U, nan, nan),        # still undiscovered
    # period 2 (days 60-90): complete; the second case's deadline (day 98) is still running
    (0, 65.0, R, 66.0, 66.0),
    (1, 88.0, K, nan, nan),
    # period 3: not complete
    (0, 91.0, R, 92.0, 92.0),
]


def _log() -> IncidentLog:
    log = IncidentLog()
    cat = np.array([c[0] for c in CASES], dtype=np.int8)
    t_rep = np.array([c[1] for c in CASES])
    log.add(cat, np.zeros(len(CASES), np.int32), np.nan_to_num(t_rep, nan=1.0) - 0.5,
            np.ones(len(CASES), np.float32))
    log.t_reported[: len(CASES)] = t_rep
    log.state[: len(CASES)] = [c[2] for c in CASES]
    log.t_closed[: len(CASES)] = [c[3] for c in CASES]
    log.t_resolved[: len(CASES)] = [c[4] for c in CASES]
    return log


def test_monthly_counts_each_period_exactly():
    df = monthly(_log(), days=DAYS, deadline_days=DEADLINES)
    assert list(df["period"]) == [0, 1, 2, 3]
    assert list(df["start_day"]) == [0, 30, 60, 90] and PERIOD_DAYS == 30
    assert list(df["reported"]) == [1, 8, 2, 1]
    assert list(df["due"]) == [1, 8, 1, 0]
    assert list(df["closed_by_period_end"]) == [1, 3, 1, 1]
    assert list(df["closed_on_time"]) == [1, 3, 1, 0]
    assert list(df["resolved_by_period_end"]) == [1, 2, 1, 1]
    assert list(df["complete"]) == [True, True, True, False]
    p1 = df.iloc[1]
    assert p1["closure_rate"] == 3 / 8
    assert p1["on_time_rate"] == 3 / 8
    assert p1["true_resolution_rate"] == 2 / 8
    # on time over the cases whose deadline has passed; a period not ended has no rate
    assert df.iloc[2]["on_time_rate"] == 1 / 1 and df.iloc[2]["closure_rate"] == 1 / 2
    assert df.iloc[3][["closure_rate", "on_time_rate", "true_resolution_rate"]].isna().all()


def test_periods_start_at_the_end_of_the_warm_up():
    df = monthly(_log(), days=DAYS, deadline_days=DEADLINES, warmup_days=31)
    assert list(df["start_day"]) == [31, 61, 91]
    assert list(df["reported"]) == [8, 2, 1]      # the case reported on day 5 is left out
    assert list(df["closed_by_period_end"]) == [4, 1, 1]  # day 59's closure (61) now counts


def test_late_and_unclosed_cases_count_against_the_rates():
    """Changing one case from "closed in time" to "closed late" or "never closed" lowers the
    rates by exactly one case over the period's reported cases."""
    base = monthly(_log(), days=DAYS, deadline_days=DEADLINES).iloc[1]
    late = _log()
    late.t_closed[1] = late.t_resolved[1] = 36.5     # reported 31, deadline 5 days: late
    late_row = monthly(late, days=DAYS, deadline_days=DEADLINES).iloc[1]
    assert late_row["on_time_rate"] == base["on_time_rate"] - 1 / 8
    assert late_row["closure_rate"] == base["closure_rate"]  # still closed within the month
    open_ = _log()
    open_.state[1] = State.KNOWN
    open_.t_closed[1] = open_.t_resolved[1] = np.nan
    row = monthly(open_, days=DAYS, deadline_days=DEADLINES).iloc[1]
    for rate in ("closure_rate", "on_time_rate", "true_resolution_rate"):
        assert row[rate] == base[rate] - 1 / 8
    assert row["reported"] == base["reported"]  # an open case stays in the denominator


@pytest.mark.parametrize("warmup, closure, on_time, resolved, periods", [
    (0, 5 / 11, 5 / 10, 4 / 11, 3),   # periods [0,30), [30,60), [60,90)
    (30, 4 / 10, 4 / 9, 3 / 10, 2),   # [30,60), [60,90)
    (31, 5 / 10, 4 / 9, 4 / 10, 2),   # [31,61), [61,91)
])
def test_the_summary_pools_the_complete_periods_after_the_warm_up(warmup, closure, on_time,
                                                              resolved, periods):
    got = pool(monthly(_log(), days=DAYS, deadline_days=DEADLINES, warmup_days=warmup))
    assert got["closure_rate"] == pytest.approx(closure)
    assert got["true_resolution_rate"] == pytest.approx(resolved)
    assert got["on_time_rate"] == pytest.approx(on_time, nan_ok=True)
    assert got["closure_periods"] == periods


def test_window_counts_match_a_period():
    log = _log()
    assert window_counts(log, 30.0, 60.0) == {"reported": 8, "closed": 3, "resolved": 2}
    assert window_counts(log, 30.0, 60.0, ids=np.arange(1, 9)) == window_counts(log, 30.0, 60.0)


def test_the_models_daily_window_is_the_month_just_ended(small_city):
    """On day 60 the daily closure rate (cases reported in the last 30 days, closed by the end
    of the day: kept incrementally) equals period 1 of the monthly table computed then, and
    the summary's windowed figures are the pooled table."""
    from sim import GovernanceModel

    m = GovernanceModel(None, rng=3, **small_city)
    m.run(60)
    table = monthly(m, warmup_days=30)
    ts = m.timeseries()
    assert table.iloc[0]["complete"] and table.iloc[0]["start_day"] == 30
    assert ts["closure_rate"].iloc[59] == table.iloc[0]["closure_rate"]
    assert ts["resolution_rate"].iloc[59] == table.iloc[0]["true_resolution_rate"]
    w = window_counts(m.incidents, 30.0, 60.0)
    assert w["reported"] == table.iloc[0]["reported"] > 100
    m.run(10)
    s = m.summary(30)
    p = pool(monthly(m, warmup_days=30))
    assert s["closure_rate"] == p["closure_rate"] and s["on_time_rate"] == p["on_time_rate"]
    assert s["closure_periods"] == s["on_time_periods"] == 1
