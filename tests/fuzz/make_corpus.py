"""Write the fuzz corpus of malformed inputs (``tests/fuzz/``) and its expectations.

Run from the repository root after changing a case: ``python tests/fuzz/make_corpus.py``. It
rewrites ``scenarios/``, ``experiments/`` and ``expect.yaml`` here; ``tests/test_fuzz_inputs.py``
reads them. Each case is a file the CLI must refuse with exit status 2, a message containing
every string listed for it in ``expect.yaml`` (the key path, or the file), no traceback, and
nothing written.

Classes (issue 12): decoding, YAML depth/size/aliases, duplicate keys, non-finite numbers,
strict types, resource bounds, degenerate cities, ``extends`` misuse, and the same for
experiment specs (ranges, design sizes, names).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# A small valid city the experiment cases start from.
TINY = ("{city.width: 12, city.height: 12, city.population: 4000, admin.townships: 2,"
        " admin.communities: 3, grids.count: 8, police.officers: 4, volunteers.community: 800,"
        " volunteers.volunteer_police: 6, volunteers.riders: 10}")


def bomb(key_path: list[str], levels: int = 9) -> str:
    """A "billion laughs" document: ``levels`` nested aliases of 10 (10^levels values, ~2 KB),
    the last one placed at ``key_path``."""
    lines = ['lol0: &lol0 "lol"']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*lol{i - 1}"] * 10)
        lines.append(f"lol{i}: &lol{i} [{refs}]")
    # the anchors live under a key of their own so that the document still names them
    body = "\n".join("  " + line for line in lines)
    text = f"anchors:\n{body}\n"
    indent = ""
    for k in key_path[:-1]:
        text += f"{indent}{k}:\n"
        indent += "  "
    return text + f"{indent}{key_path[-1]}: *lol{levels}\n"


# --------------------------------------------------------------------------- scenario files
# name -> (content: str or bytes, [strings the error message must contain])
SCENARIOS: dict[str, tuple[str | bytes, list[str]]] = {
    # decoding
    "latin1": (b"name: caf\xe9\ngrids:\n  count: 10\n", ["latin1.yaml", "not UTF-8"]),
    "utf16": ("name: x\n".encode("utf-16"), ["utf16.yaml", "not UTF-8"]),
    "binary": (bytes(range(256)) * 4, ["binary.yaml"]),
    "nul_byte": (b"name: a\x00b\n", ["nul_byte.yaml"]),
    "control_chars": ("name: a\x07b\x1b[31m\n", ["control_chars.yaml"]),
    # YAML structure and limits
    "deep_flow_list": ("city: " + "[" * 1000 + "]" * 1000 + "\n", ["deep_flow_list.yaml", "nested deeper"]),
    "deep_flow_map": ("city: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n", ["deep_flow_map.yaml", "nested deeper"]),
    "deep_block": ("".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n",
                   ["deep_block.yaml", "nested deeper"]),
    "alias_bomb_description": (bomb(["description"]), ["alias_bomb_description.yaml", "aliases"]),
    "alias_bomb_unknown_key": (bomb(["lol"]), ["alias_bomb_unknown_key.yaml", "aliases"]),
    "alias_bomb_section": (bomb(["grids", "count"]), ["alias_bomb_section.yaml", "aliases"]),
    "alias_recursive": ("city: &c {centres: [*c]}\n", ["alias_recursive.yaml", "alias"]),
    "alias_undefined": ("grids: {count: *nowhere}\n", ["alias_undefined.yaml", "line 1"]),
    "syntax_tab": ("grids:\n\tcount: 10\n", ["syntax_tab.yaml", "YAML syntax error", "line 2"]),
    "syntax_unclosed_quote": ('name: "abc\n', ["syntax_unclosed_quote.yaml", "YAML syntax error"]),
    "syntax_unclosed_flow": ("city: {width: 10\n", ["syntax_unclosed_flow.yaml", "YAML syntax error"]),
    "two_documents": ("name: a\n---\nname: b\n", ["two_documents.yaml"]),
    "python_tag": ("name: !!python/object/apply:os.system ['echo hi']\n", ["python_tag.yaml"]),
    "unhashable_key": ("? [a, b]\n: 1\n", ["unhashable_key.yaml"]),
    "duplicate_top_key": ("days: 10\ndays: 20\n", ["duplicate_top_key.yaml", "duplicate key 'days'", "line 2"]),
    "duplicate_nested_key": ("grids: {count: 10, count: 20}\n", ["duplicate_nested_key.yaml", "duplicate key 'count'"]),
    "duplicate_section": ("city:\n  width: 10\ncity:\n  height: 10\n", ["duplicate_section.yaml", "duplicate key 'city'"]),
    "not_mapping_list": ("- 1\n- 2\n", ["not_mapping_list.yaml", "YAML mapping"]),
    "not_mapping_scalar": ("42\n", ["not_mapping_scalar.yaml", "YAML mapping"]),
    "not_mapping_text": ("just some words\n", ["not_mapping_text.yaml", "YAML mapping"]),
    "long_key": ("x" * 1_000 + ": 1\n", ["long_key.yaml", "unknown key"]),
    "long_key_over_yaml_limit": ("x" * 5_000 + ": 1\n", ["long_key_over_yaml_limit.yaml", "line 1"]),
    "long_value_unknown_key": ("zzz: " + "y" * 20_000 + "\n", ["long_value_unknown_key.yaml", "zzz", "unknown key"]),
    "markup_key": ("'[/bold]': 1\n'[red]x[/red]': 2\n", ["markup_key.yaml", "[/bold]", "unknown key"]),
    "null_key": ("~: 1\n", ["null_key.yaml", "key 'None'", "strings"]),
    "int_key": ("1: 2\n", ["int_key.yaml", "key '1'", "strings"]),
    # non-finite numbers
    "inf_base_rate": ("incidents:\n  hazard:\n    base_rate: .inf\n", ["incidents.hazard.base_rate", "finite"]),
    "nan_cell_km": ("city:\n  cell_km: .nan\n", ["city.cell_km", "finite"]),
    "neg_inf_bias": ("safety:\n  survey_nonresponse_bias: -.inf\n", ["safety.survey_nonresponse_bias", "finite"]),
    "inf_latency_hours": ("channels:\n  hotline:\n    latency_hours: .inf\n", ["channels.hotline.latency_hours", "finite"]),
    "inf_triage_delay": ("handling:\n  triage_delay_hours: .inf\n", ["handling.triage_delay_hours", "finite"]),
    "inf_servers": ("handling:\n  community:\n    servers_per_10k: .inf\n", ["handling.community.servers_per_10k", "finite"]),
    "nan_service_ratio": ("handling:\n  police_speed: .nan\n", ["handling.police_speed", "finite"]),
    "inf_officers": ("police:\n  officers: .inf\n", ["police.officers", "finite"]),
    "nan_grids": ("grids:\n  count: .nan\n", ["grids.count", "finite"]),
    "inf_centre": ("city:\n  centres: [{x: .inf, share: 0.85}]\n", ["city.centres.0.x", "finite"]),
    "inf_days": ("days: .inf\n", ["days", "finite"]),
    "inf_memory_days": ("dynamics:\n  presence_memory_days: .inf\n", ["dynamics.presence_memory_days", "finite"]),
    # huge and tiny numbers
    "population_1e15": ("city:\n  population: 1.0e+15\n", ["city.population", "PiB"]),
    "population_int_1e15": ("city:\n  population: 1000000000000000\n", ["city.population", "PiB"]),
    "population_1e30": ("city:\n  population: 1000000000000000000000000000000\n", ["city.population", "at most"]),
    "officers_1e9": ("police:\n  officers: 1000000000\n", ["police.officers", "1,000,000"]),
    "volunteers_1e12": ("volunteers:\n  community: 1000000000000\n", ["volunteers", "limit"]),
    "rider_passes": ("volunteers:\n  riders: 9000000000000\n  rider_cells_per_day: 9000000000\n",
                     ["volunteers", "limit"]),
    "grids_1e300": ("grids:\n  count: 1.0e+300\n", ["grids.count", "at most"]),
    "base_rate_1e300": ("incidents:\n  hazard:\n    base_rate: 1.0e+300\n", ["incidents.hazard.base_rate", "between"]),
    "base_rate_huge": ("incidents:\n  hazard:\n    base_rate: 1.0e+11\n", ["incidents", "memory"]),
    "visit_hours_tiny": ("police:\n  visit_hours_per_cell: 1.0e-300\n", ["police.visit_hours_per_cell", "between"]),
    "visit_hours_small": ("police:\n  visit_hours_per_cell: 1.0e-9\n", ["visit", "a day"]),
    "seed_huge": ("seed: " + "9" * 400 + "\n", ["seed", "at most"]),
    "lattice_too_big": ("city:\n  width: 5000\n  height: 5000\n", ["city.width", "2000"]),
    "risk_correlation_huge": ("city:\n  risk_correlation_km: 1000000\n", ["city.risk_correlation_km", "kernel"]),
    "disorder_sensitivity_huge": ("incidents:\n  infrastructure:\n    disorder_sensitivity: 1.0e+11\n",
                                  ["incidents", "memory"]),
    "scale_huge": ("population:\n  scale: 1.0e+13\n", ["population.scale", "between"]),
    # strict types
    "bool_grids": ("grids:\n  count: true\n", ["grids.count", "true/false"]),
    "bool_population": ("city:\n  population: false\n", ["city.population", "true/false"]),
    "bool_cell_km": ("city:\n  cell_km: true\n", ["city.cell_km", "true/false"]),
    "int_for_bool": ("fusion:\n  enabled: 1\n", ["fusion.enabled", "true or false"]),
    "text_for_bool": ("fusion:\n  enabled: 'yes'\n", ["fusion.enabled", "true or false"]),
    "text_for_int": ("grids:\n  count: '176'\n", ["grids.count", "text"]),
    "text_for_float": ("city:\n  cell_km: '0.25'\n", ["city.cell_km", "text"]),
    "fraction_for_int": ("grids:\n  count: 2.5\n", ["grids.count"]),
    "int_for_name": ("name: 123\n", ["name", "string"]),
    "list_for_name": ("name: [a, b]\n", ["name"]),
    "map_for_description": ("description: {a: 1}\n", ["description"]),
    "map_for_centres": ("city:\n  centres: {x: 1}\n", ["city.centres"]),
    "scalar_for_section": ("city: 5\n", ["city"]),
    "list_for_section": ("incidents: [1, 2]\n", ["incidents"]),
    "scalar_for_category": ("incidents:\n  hazard: 3\n", ["incidents.hazard"]),
    "bad_choice_type": ("police:\n  strategy: 1\n", ["police.strategy"]),
    "negative_days": ("days: -1\n", ["days", "-1"]),
    "days_over_cap": ("days: 36501\n", ["days", "36500"]),
    # degenerate cities
    "fewer_people_than_grids": ("city:\n  population: 10\n", ["city.population", "grids.count"]),
    "empty_after_scale": ("population:\n  scale: 1000000\n", ["population.scale", "no resident"]),
    "too_few_agents": ("population:\n  scale: 10000\n", ["population.scale", "grids"]),
    "grids_exceed_cells": ("grids:\n  count: 100000\n", ["grids.count", "cells"]),
    "shares_wrong": ("city:\n  rural_share: 0.9\n", ["city", "add up to 1"]),
    # extends
    "extends_experiment": ("extends: ../../../experiments/grid_count_sweep.yaml\n",
                           ["extends", "not a scenario file"]),
    "extends_secret": ("extends: ../secret.yaml\n", ["extends", "not a scenario file", "password"]),
    "extends_binary": ("extends: binary.yaml\n", ["binary.yaml"]),
    "extends_list": ("extends: [a.yaml, b.yaml]\n", ["extends"]),
    "extends_empty": ("extends: ''\n", ["extends"]),
    "extends_directory": ("extends: .\n", ["extends", "no scenario file"]),
    "extends_missing": ("extends: no_such_parent.yaml\n", ["extends", "no_such_parent"]),
    "extends_self": ("extends: extends_self.yaml\n", ["extends", "cycle"]),
    "extends_long_name": ("extends: " + "n" * 5000 + ".yaml\n", ["extends", "no scenario file"]),
    "extends_nul": ('extends: "a\\0b.yaml"\n', ["extends"]),
    "extends_bomb": ("extends: alias_bomb_description.yaml\n", ["alias_bomb_description.yaml", "aliases"]),
    "extends_dev_zero": ("extends: /dev/zero\n", ["extends"]),
}
# A file that is not a scenario, named by extends_secret: its value must never be echoed.
SECRET = "password: hunter2-do-not-echo\ntoken: {a: b}\n"

# --------------------------------------------------------------------------- experiment specs
def spec(factors: str = "grids.count: [6, 8]", *, name: str = "fz", design: str = "{kind: full_factorial}",
         reps: str = "1", seed: str = "1", days: str = "10", warmup: str = "2",
         scenarios: str | None = None, extra: str = "") -> str:
    scen = scenarios if scenarios is not None else f"  - {{label: a, scenario: default.yaml, set: {TINY}}}\n"
    return (f"name: {name}\nscenarios:\n{scen}factors:\n  {factors}\ndesign: {design}\n"
            f"replications: {reps}\nseed: {seed}\ndays: {days}\nwarmup_days: {warmup}\n"
            f"outputs: {{timeseries: false, incidents: false}}\n{extra}")


LHS = "{kind: latin_hypercube, samples: 4}"
EXPERIMENTS: dict[str, tuple[str | bytes, list[str]]] = {
    "latin1": (b"name: caf\xe9\n", ["latin1.yaml", "not UTF-8"]),
    "alias_bomb_factors": (bomb(["factors", "grids.count"]), ["alias_bomb_factors.yaml", "aliases"]),
    "alias_recursive_set": ("name: x\nscenarios: &s [{label: a, scenario: default.yaml, set: {x: *s}}]\nseed: 1\n",
                            ["alias_recursive_set.yaml", "alias"]),
    "deep": ("factors: " + "[" * 1000 + "]" * 1000 + "\n", ["deep.yaml", "nested deeper"]),
    "duplicate_key": (spec(extra="replications: 3\n"), ["duplicate_key.yaml", "duplicate key 'replications'"]),
    "duplicate_factor": (spec("grids.count: [6, 8]\n  grids.count: [9]"), ["duplicate_factor.yaml", "duplicate key"]),
    "list_spec": ("- name: x\n", ["list_spec.yaml", "YAML mapping"]),
    "reps_bool": (spec(reps="true"), ["replications", "true/false"]),
    "reps_text": (spec(reps="'3'"), ["replications", "text"]),
    "reps_zero": (spec(reps="0"), ["replications", "greater than or equal to 1"]),
    "reps_over": (spec(reps="100001"), ["replications", "100000"]),
    "seed_inf": (spec(seed=".inf"), ["seed", "finite"]),
    "seed_negative": (spec(seed="-1"), ["seed", "-1"]),
    "seed_bool": (spec(seed="true"), ["seed", "true/false"]),
    "seed_missing": (spec().replace("seed: 1\n", ""), ["seed", "missing"]),
    "days_huge": (spec(days="1000000000"), ["days", "36500"]),
    "days_inf": (spec(days=".inf"), ["days", "finite"]),
    "days_float": (spec(days="10.5"), ["days"]),
    "warmup_ge_days": (spec(warmup="10"), ["warmup_days", "less than days"]),
    "range_high_inf": (spec("police.officers: {low: 1, high: .inf}", design=LHS),
                       ["factors.police.officers", "high"]),
    "range_high_1e300": (spec("police.officers: {low: 1, high: 1.0e+300}", design=LHS),
                         ["factors.police.officers", "high"]),
    "range_low_nan": (spec("incidents.hazard.base_rate: {low: .nan, high: 5}", design=LHS),
                      ["factors.incidents.hazard.base_rate", "low"]),
    "range_float_1e300": (spec("incidents.hazard.base_rate: {low: 1, high: 1.0e+300}", design=LHS),
                          ["factors.incidents.hazard.base_rate", "high"]),
    "range_huge_valid_floats": (spec("incidents.hazard.base_rate: {low: 1.0e+10, high: 1.0e+11}", design=LHS),
                                ["design point", "incidents", "memory"]),
    "range_bool": (spec("police.officers: {low: true, high: 5}", design=LHS), ["factors.police.officers", "low"]),
    "range_reversed": (spec("police.officers: {low: 50, high: 10}", design=LHS), ["factors.police.officers", "low < high"]),
    "range_extra_key": (spec("police.officers: {low: 1, high: 5, step: 1}", design=LHS), ["factors.police.officers", "low"]),
    "range_text_key": (spec("police.strategy: {low: 1, high: 5}", design=LHS), ["factors.police.strategy", "numeric"]),
    "range_in_factorial": (spec("police.officers: {low: 1, high: 5}"), ["factors.police.officers", "full_factorial"]),
    "levels_inf": (spec("grids.count: [.inf]"), ["design point 0", "grids.count", "finite"]),
    "levels_bool": (spec("grids.count: [true, 8]"), ["design point 0", "grids.count", "true/false"]),
    "levels_empty": (spec("grids.count: []"), ["factors.grids.count", "at least one value"]),
    "levels_population_1e15": (spec("city.population: [1000000000000000]"), ["design point 0", "city.population", "PiB"]),
    "factorial_too_big": (spec("\n  ".join(f"{k}: [{', '.join(str(v) for v in range(1, 41))}]" for k in (
        "police.officers", "paperwork.forms", "paperwork.inspection_items", "volunteers.riders",
        "volunteers.community"))), ["factors", "points", "limit"]),
    "lhs_samples_huge": (spec("police.officers: {low: 1, high: 5}",
                              design="{kind: latin_hypercube, samples: 1000000000}"), ["design", "points", "limit"]),
    "sobol_huge": (spec("police.officers: {low: 1, high: 5}",
                        design="{kind: sobol, base_samples: 1099511627776}"), ["design", "points", "limit"]),
    "morris_huge": (spec("police.officers: {low: 1, high: 5}",
                         design="{kind: morris, trajectories: 1000000000}"), ["design", "points", "limit"]),
    "too_many_runs": (spec("police.officers: {low: 1, high: 5}", design="{kind: latin_hypercube, samples: 40000}",
                           reps="100"), ["replications", "runs", "limit"]),
    "sobol_not_pow2": (spec("police.officers: {low: 1, high: 9}", design="{kind: sobol, base_samples: 12}"),
                       ["design.base_samples", "power of 2"]),
    "design_kind_unknown": (spec(design="{kind: magic}"), ["design.kind", "magic"]),
    "design_levels_bool": (spec(design="{kind: morris, trajectories: 4, levels: true}"), ["design.levels", "true/false"]),
    "name_dotdot": (spec(name="'..'"), ["name"]),
    "name_dot": (spec(name="'.'"), ["name"]),
    "name_hidden": (spec(name=".hidden"), ["name"]),
    "name_slash": (spec(name="a/b"), ["name"]),
    "name_abs": (spec(name="/tmp/x"), ["name"]),
    "name_int": (spec(name="123"), ["name"]),
    "name_long": (spec(name="n" * 300), ["name"]),
    "scenarios_empty": (spec(scenarios=" []\n").replace("scenarios:\n []", "scenarios: []"), ["scenarios"]),
    "scenarios_dup_label": (spec(scenarios="  - {label: a, scenario: default.yaml}\n  - {label: a, scenario: default.yaml}\n"),
                            ["scenarios", "unique"]),
    "scenario_missing": (spec(scenarios="  - {label: a, scenario: nowhere.yaml}\n"), ["scenarios.0.scenario", "nowhere.yaml"]),
    "scenario_is_experiment": (spec(scenarios="  - {label: a, scenario: ../../../experiments/grid_count_sweep.yaml}\n"),
                               ["scenarios.0", "unknown key"]),
    "scenario_set_huge": (spec(scenarios="  - {label: a, scenario: default.yaml, set: {city.population: 1.0e+15}}\n"),
                          ["scenarios.0", "city.population", "PiB"]),
    "scenario_set_unknown": (spec(scenarios="  - {label: a, scenario: default.yaml, set: {grids.cuont: 3}}\n"),
                             ["scenarios.0", "grids.cuont"]),
    "scenario_set_inf": (spec(scenarios="  - {label: a, scenario: default.yaml, set: {police.patrol_hours_per_day: .inf}}\n"),
                         ["scenarios.0", "police.patrol_hours_per_day", "finite"]),
    "outputs_every_zero": (spec(extra="").replace("outputs: {timeseries: false, incidents: false}",
                                                   "outputs: {timeseries: true, timeseries_every: 0}"),
                           ["outputs.timeseries_every"]),
    "outputs_bool_for_int": (spec().replace("outputs: {timeseries: false, incidents: false}",
                                            "outputs: {timeseries_every: true}"), ["outputs.timeseries_every", "true/false"]),
    "outcomes_unknown": (spec(extra="outcomes: [nope]\n"), ["outcomes", "nope"]),
    "factors_list": (spec().replace("factors:\n  grids.count: [6, 8]", "factors: [1, 2]"), ["factors"]),
    "factor_scalar": (spec("grids.count: 5"), ["factors.grids.count", "list of values"]),
    "factor_unknown": (spec("grids.cuont: [1, 2]"), ["factors.grids.cuont", "unknown scenario key"]),
    "lever_not_mapping": (spec("paper: [{paperwork.forms: 10}, 5]"), ["factors.paper", "mapping"]),
    "lever_unknown_key": (spec("paper: [{paperwork.frms: 10}]"), ["factors.paper", "paperwork.frms"]),
}


def _write(folder: Path, cases: dict[str, tuple[str | bytes, list[str]]]) -> dict[str, list[str]]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    expect = {}
    for name, (content, needles) in cases.items():
        path = folder / f"{name}.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        expect[f"{name}.yaml"] = needles
    return expect


def main() -> None:
    expect = {"scenarios": _write(HERE / "scenarios", SCENARIOS),
              "experiments": _write(HERE / "experiments", EXPERIMENTS)}
    (HERE / "secret.yaml").write_text(SECRET, encoding="utf-8")
    header = ("# Generated by tests/fuzz/make_corpus.py: the strings each case's error message must"
              " contain.\n")
    (HERE / "expect.yaml").write_text(header + yaml.safe_dump(expect, allow_unicode=True, width=200),
                                      encoding="utf-8")
    n = sum(len(v) for v in expect.values())
    print(f"{n} files written under {HERE}")


if __name__ == "__main__":
    main()
