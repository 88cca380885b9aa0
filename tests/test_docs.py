"""docs/MODEL.md stays true to the code: generated parameter tables, sourced defaults, modules.

* The parameter section between the markers equals what ``sim.analysis.docgen`` renders from the schema
  now, so the documented defaults, ranges and descriptions cannot drift from ``sim/scenario.py``.
* Every scenario parameter says where its default comes from (a source or "assumed"), unless it
  is a structural setting listed below.
* The ODD description mentions every module of ``sim/`` that the model uses.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

from sim.analysis.docgen import (
    BEGIN_MARKER,
    END_MARKER,
    extract_generated,
    iter_parameters,
    parameter_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL_MD = ROOT / "docs" / "MODEL.md"
SIM = ROOT / "sim"

# A description states a source if it contains one of these.
SOURCE_WORDS = ("Assumed", "assumed", "Pingxiang", "census", "DESIGN", "China", "Shangli", "%",
                "Calibrated", "figure")

# Structural or obvious settings: what to run, model resolution and geometry, on/off switches
# of levers, and what defines a category. Real behavioural parameters do NOT belong here: give
# them a source or "Assumed." in sim/scenario.py instead.
STRUCTURAL = (
    # run settings
    "name", "description", "days", "warmup_days", "seed",
    # size and layout of the synthetic district (a choice of study area, not a calibration)
    "city.width", "city.height", "city.population",
    "city.centres", "city.centres[].x", "city.centres[].y",
    "city.centres[].share",  # forced by city.rural_share: the shares must add up to 1
    # resolution: people per agent
    "population.scale", "volunteers.agent_scale",
    # lever switches and choices
    "channels.*.enabled", "tiers.enabled", "fusion.enabled", "feedback.closed_loop",
    "police.strategy", "handling.social_work.enabled", "grid_workers.overload_slowdown",
    # staff levers whose default (None) means "the ratio-based staffing applies"
    "grid_workers.total", "handling.*.staff",
    # observation schedule
    "safety.survey_interval_days",
    # what a category is and where it goes by default
    "incidents.*.latent", "incidents.*.has_victim", "incidents.*.route",
)


def _matches(key: str, pattern: str) -> bool:
    # "*" is one path segment or more; fnmatch's [] is a character class, so the literal "[]"
    # of tuple elements is escaped
    return fnmatch.fnmatchcase(key, pattern.replace("[]", "[[]]"))


def _structural(key: str) -> bool:
    return any(_matches(key, p) for p in STRUCTURAL)


def _compact(keys: list[str]) -> list[str]:
    """Collapse keys that differ only in the incident category into ``incidents.*.field``."""
    from sim.scenario import CATEGORIES

    out: list[str] = []
    for k in keys:
        parts = k.split(".")
        if len(parts) == 3 and parts[0] == "incidents" and parts[1] in CATEGORIES:
            cats = [c for c in CATEGORIES if f"incidents.{c}.{parts[2]}" in keys]
            k = f"incidents.*.{parts[2]}" if len(cats) == len(CATEGORIES) else k
        if k not in out:
            out.append(k)
    return out


def test_parameter_section_is_generated_from_the_schema():
    text = MODEL_MD.read_text(encoding="utf-8")
    assert BEGIN_MARKER in text and END_MARKER in text, (
        f"{MODEL_MD} lost its parameter markers {BEGIN_MARKER!r} / {END_MARKER!r}"
    )
    assert extract_generated(text) == parameter_markdown().strip(), (
        "the parameter tables in docs/MODEL.md are out of date with sim/scenario.py; "
        "run: python -m sim.analysis.docgen --write docs/MODEL.md"
    )


def test_every_parameter_is_documented():
    params = list(iter_parameters())
    assert len(params) > 100  # the walk reached the nested sections and the six categories
    undocumented = [p.key for p in params if not p.description]
    assert not undocumented, f"parameters without a description: {undocumented}"
    for pattern in STRUCTURAL:  # the allow-list names real keys (no stale entries)
        assert any(_matches(p.key, pattern) for p in params), (
            f"STRUCTURAL entry {pattern!r} matches no parameter"
        )


def test_every_parameter_states_the_source_of_its_default():
    lacking = [p.key for p in iter_parameters()
               if not any(w in p.description for w in SOURCE_WORDS)]
    unexplained = [k for k in lacking if not _structural(k)]
    assert not unexplained, (
        f"{len(unexplained)} scenario parameters have a description that states no source "
        "(a figure of Pingxiang or another cited source, or 'Assumed.'). Add it to the field's "
        "description in sim/scenario.py, then run python -m sim.analysis.docgen --write docs/MODEL.md. "
        "Missing (* = every category): " + ", ".join(_compact(unexplained))
    )


def _sim_imports(module: str) -> set[str]:
    """Modules of the sim package imported (directly) by sim/<module>.py."""
    tree = ast.parse((SIM / f"{module}.py").read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:          # from .x import y
                out.add(node.module.split(".")[0])
            elif node.level == 1 or node.module == "sim":  # from . import x; from sim import x
                out.update(a.name for a in node.names)
            elif node.module and node.module.startswith("sim."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("sim."))
    return {m for m in out if (SIM / f"{m}.py").is_file()}


def _used_by_model() -> set[str]:
    seen: set[str] = set()
    todo = ["model"]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(_sim_imports(m) - seen)
    return seen


def test_model_md_mentions_every_module_the_model_uses():
    text = MODEL_MD.read_text(encoding="utf-8")
    required = {"city", "agents", "incidents", "channels", "dispatch", "queueing", "safety",
                "metrics", "rng"}
    used = _used_by_model()
    assert required <= used, (
        f"the model no longer imports {sorted(required - used)}: update this test"
    )
    missing = [f"sim/{m}.py" for m in sorted(used | required) if f"sim/{m}.py" not in text]
    assert not missing, f"docs/MODEL.md does not mention {', '.join(missing)}"
