"""Frozen baseline: default.yaml, 90 days, seed 20240101, compared exactly.

Any change in the model's numbers fails this test. If the change is intended, rewrite the
baseline with ``python tests/update_baseline.py`` and say in the commit why the numbers moved.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from update_baseline import BASELINE, compute  # tests/ is on sys.path under pytest's rootdir


@pytest.mark.slow
def test_default_90_days_matches_frozen_baseline():
    frozen = json.loads(Path(BASELINE).read_text())
    now = compute()
    assert now["scenario_digest"] == frozen["scenario_digest"], (
        "default.yaml or a default in sim/scenario.py changed; if intended, run tests/update_baseline.py"
    )
    diffs = {}
    for k, v in frozen["summary"].items():
        w = now["summary"].get(k)
        same = (w == v) or (isinstance(v, float) and isinstance(w, float) and math.isnan(v) and math.isnan(w))
        if not same:
            diffs[k] = (v, w)
    assert set(now["summary"]) == set(frozen["summary"]), "summary metrics were added or removed"
    assert not diffs, f"metrics moved (frozen, now): {diffs}"
