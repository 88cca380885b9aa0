"""Rewrite the frozen baseline (tests/baseline_default_90d.json). Run deliberately:

    .venv/bin/python tests/update_baseline.py

only when the model's numbers are meant to change, and say in the commit why they moved.
The test (tests/test_baseline.py) compares every summary metric of default.yaml, 90 days,
seed 20240101, warm-up 30, exactly against this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim import GovernanceModel  # noqa: E402

BASELINE = Path(__file__).with_name("baseline_default_90d.json")
SEED, DAYS, WARMUP = 20240101, 90, 30


def compute() -> dict:
    model = GovernanceModel("default", rng=SEED)
    model.run(DAYS)
    return {"seed": SEED, "days": DAYS, "warmup_days": WARMUP,
            "scenario_digest": model.config.digest(), "summary": model.summary(WARMUP)}


if __name__ == "__main__":
    data = compute()
    old = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    BASELINE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    if old:
        moved = {k: (old["summary"].get(k), v) for k, v in data["summary"].items()
                 if old["summary"].get(k) != v and not (v != v and old["summary"].get(k) != old["summary"].get(k))}
        print(f"{len(moved)} metrics moved:")
        for k, (a, b) in sorted(moved.items()):
            print(f"  {k}: {a} -> {b}")
    print(f"wrote {BASELINE}")
