"""Bad input never gives a traceback, a hang or a stray file (issue 12).

Every case is a malformed scenario file, experiment file, command line or results directory.
Each must end with exit status 2, a message naming the key (or the file), no traceback, and no
file written anywhere (directory listings before and after are compared). The cases run
in-process (``sim.cli.main``) so the module stays fast; a few run as real subprocesses.

The file cases are the corpus in ``tests/fuzz/`` (written by ``tests/fuzz/make_corpus.py``;
``tests/fuzz/expect.yaml`` lists the strings each message must contain).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import sim.batch.results as results_mod
import sim.batch.runner as runner_mod
from sim.cli import main
from sim.files import MAX_INPUT_BYTES, InputError, check_output_dir, safe_name
from sim.scenario import MAX_EXTENDS, ScenarioError, load_scenario

FUZZ = Path(__file__).resolve().parent / "fuzz"
EXPECT = yaml.safe_load((FUZZ / "expect.yaml").read_text(encoding="utf-8"))
REPO = Path(__file__).resolve().parent.parent
# Never in any output: a traceback, or the values of a file named by `extends` that is not a
# scenario (tests/fuzz/secret.yaml, experiments/grid_count_sweep.yaml's description).
FORBIDDEN = ("Traceback", "hunter2", "crossed with officers")
MAX_MESSAGE = 6_000  # characters: a message is shortened, never a dump of the input
PROC = Path("/proc/self").is_dir()  # Linux: /proc stands for an unwritable location, even for root


# --------------------------------------------------------------------------- harness
def _listing(*roots: Path) -> set[tuple[str, int]]:
    """Every path under ``roots`` (hidden ones too) with its size: what "nothing written"
    compares."""
    out = set()
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                out.add((str(p), p.stat().st_size if p.is_file() else -1))
    return out


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory whose ``results/`` is the default results directory."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(results_mod, "DEFAULT_RESULTS_DIR", work / "results")
    monkeypatch.setattr(runner_mod, "DEFAULT_RESULTS_DIR", work / "results", raising=False)
    return work


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse reports bad options this way (status 2)
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def assert_refused(argv: list[str], needles: list[str], capsys, *watch: Path,
                   seconds: float = 30.0) -> str:
    """Run ``govsim argv`` in-process; check status 2, the needles, no traceback or
    forbidden text, a short message, nothing written under ``watch`` (and the corpus)."""
    roots = (*watch, FUZZ)
    before = _listing(*roots)
    t0 = time.monotonic()
    code, text = run_cli(argv, capsys)
    elapsed = time.monotonic() - t0
    assert code == 2, (argv, code, text[-2000:])
    for n in needles:
        assert n in text, (n, text[:3000])
    for f in FORBIDDEN:
        assert f not in text, (f, text[:3000])
    assert len(text) < MAX_MESSAGE, len(text)
    assert _listing(*roots) == before, "a file was written"
    assert elapsed < seconds, elapsed
    return text


# --------------------------------------------------------------------------- the corpus
SCENARIO_CASES = sorted(EXPECT["scenarios"])
EXPERIMENT_CASES = sorted(EXPECT["experiments"])


def test_corpus_is_complete():
    on_disk = {p.name for p in (FUZZ / "scenarios").glob("*.yaml")}
    assert on_disk == set(SCENARIO_CASES)
    on_disk = {p.name for p in (FUZZ / "experiments").glob("*.yaml")}
    assert on_disk == set(EXPERIMENT_CASES)
    # issue 12: at least 120 malformed scenario files, specs and command lines
    assert len(SCENARIO_CASES) + len(EXPERIMENT_CASES) + len(CLI_CASES) >= 120


@pytest.mark.parametrize("case", SCENARIO_CASES)
def test_scenario_file_refused(case, sandbox, capsys):
    path = FUZZ / "scenarios" / case
    out = sandbox / "out"
    assert_refused(["run", str(path), "--days", "2", "--out", str(out)],
                   EXPECT["scenarios"][case], capsys, sandbox)


@pytest.mark.parametrize("case", SCENARIO_CASES)
def test_scenario_file_raises_scenario_error(case):
    """The library refuses the same files with a ScenarioError (nothing else) naming them."""
    with pytest.raises(ScenarioError) as err:
        load_scenario(FUZZ / "scenarios" / case)
    for n in EXPECT["scenarios"][case]:
        assert n in str(err.value), (n, str(err.value)[:2000])


@pytest.mark.parametrize("case", EXPERIMENT_CASES)
def test_experiment_file_refused(case, sandbox, capsys):
    path = FUZZ / "experiments" / case
    out = sandbox / "out"
    assert_refused(["experiment", "run", str(path), "--out", str(out), "--workers", "1", "--quiet"],
                   EXPECT["experiments"][case], capsys, sandbox)


def test_oversized_file_refused(sandbox, capsys):
    big = sandbox / "big.yaml"
    big.write_text("# padding\n" * (MAX_INPUT_BYTES // 10 + 10))
    assert_refused(["validate", str(big)], ["big.yaml", "larger than"], capsys, sandbox)


def test_extends_chain_too_long(sandbox, capsys):
    for i in range(MAX_EXTENDS + 3):
        (sandbox / f"c{i}.yaml").write_text(f"extends: c{i + 1}.yaml\n" if i < MAX_EXTENDS + 2 else "days: 5\n")
    assert_refused(["validate", str(sandbox / "c0.yaml")], ["extends", "more than"], capsys, sandbox)


# --------------------------------------------------------------------------- command lines
SPEC = "grid_count_sweep"
# (argv with {file} = an existing file, {dir} = a non-empty directory, {corpus} = tests/fuzz;
#  strings the message must contain)
CLI_CASES: dict[str, tuple[list[str], list[str]]] = {
    "days_huge": (["run", "default", "--days", "1000000000"], ["--days", "36,500"]),
    "days_zero": (["run", "default", "--days", "0"], ["--days"]),
    "days_negative": (["run", "default", "--days", "-5"], ["--days"]),
    "days_text": (["run", "default", "--days", "abc"], ["--days", "abc"]),
    "days_exponent": (["run", "default", "--days", "1e3"], ["--days"]),
    "days_over_cap": (["run", "default", "--days", "36501"], ["--days", "36,500"]),
    "warmup_ge_days": (["run", "default", "--days", "10", "--warmup", "10"], ["--warmup"]),
    "warmup_negative": (["run", "default", "--warmup", "-1"], ["--warmup"]),
    "seed_negative": (["run", "default", "--seed", "-1"], ["--seed"]),
    "seed_too_big": (["run", "default", "--seed", "9" * 30], ["--seed"]),
    "set_bool_for_int": (["run", "default", "--set", "grids.count=true"], ["grids.count", "true/false"]),
    "set_population_huge": (["run", "default", "--set", "city.population=1.0e+15"], ["city.population", "PiB"]),
    "set_population_text": (["run", "default", "--set", "city.population=1e15"], ["city.population", "text"]),
    "set_no_equals": (["run", "default", "--set", "grids.count"], ["--set", "section.key=value"]),
    "set_empty_key": (["run", "default", "--set", "=3"], ["--set", "empty"]),
    "set_not_yaml": (["run", "default", "--set", "grids.count=[[[["], ["grids.count"]),
    "set_recursive_alias": (["run", "default", "--set", "description=&a [*a]"], ["description", "alias"]),
    "set_deep": (["run", "default", "--set", "description=" + "[" * 500 + "]" * 500], ["description", "nested"]),
    "set_duplicate_keys": (["run", "default", "--set", "city={width: 10, width: 12}"], ["city", "duplicate key"]),
    "set_inf": (["run", "default", "--set", "grids.count=.inf"], ["grids.count", "finite"]),
    "set_nan_float": (["run", "default", "--set", "city.cell_km=.nan"], ["city.cell_km", "finite"]),
    "set_unknown_key": (["run", "default", "--set", "nope.key=1"], ["nope.key", "valid keys"]),
    "set_officers_huge": (["run", "default", "--set", "police.officers=1000000000"], ["police.officers"]),
    "set_empty_population": (["run", "default", "--set", "population.scale=1000000"], ["population.scale"]),
    "set_long_key": (["run", "default", "--set", "k" * 5000 + "=1"], ["unknown key"]),
    "set_markup": (["run", "default", "--set", "[/bold]=1"], ["[/bold]"]),
    "scenario_missing": (["run", "no_such_scenario"], ["no_such_scenario"]),
    "scenario_empty_name": (["run", ""], ["no scenario file"]),
    "scenario_long_name": (["run", "a" * 5000], ["no scenario file"]),
    "scenario_is_directory": (["run", "{dir}"], ["no scenario file"]),
    "scenario_is_dev_zero": (["run", "/dev/zero"], ["no scenario file"]),
    "out_is_file": (["run", "default", "--days", "2", "--out", "{file}"], ["is a file"]),
    "out_under_file": (["run", "default", "--days", "2", "--out", "{file}/sub"], ["is a file"]),
    "out_unwritable": (["run", "default", "--days", "2", "--out", "/proc/govsim-out"], ["/proc/govsim-out"]),
    "out_exists": (["run", "default", "--days", "2", "--out", "{dir}"], ["already exists"]),
    "out_file_force": (["run", "default", "--days", "2", "--out", "{file}", "--force"], ["is a file"]),
    "workers_zero": (["experiment", "run", SPEC, "--workers", "0"], ["--workers", "1 = serial"]),
    "workers_negative": (["experiment", "run", SPEC, "--workers", "-1"], ["--workers"]),
    "workers_huge": (["experiment", "run", SPEC, "--workers", "100000"], ["--workers"]),
    "workers_text": (["experiment", "run", SPEC, "--workers", "two"], ["--workers"]),
    "experiment_out_file": (["experiment", "run", SPEC, "--out", "{file}"], ["is a file"]),
    "experiment_out_under_file": (["experiment", "run", SPEC, "--out", "{file}/sub"], ["is a file"]),
    "experiment_out_unwritable": (["experiment", "run", SPEC, "--out", "/proc/govsim-out"], ["/proc/govsim-out"]),
    "experiment_out_exists": (["experiment", "run", SPEC, "--out", "{dir}"], ["already exists", "--resume"]),
    "experiment_missing": (["experiment", "run", "no_such_experiment"], ["no_such_experiment"]),
    "experiment_resume_not_results": (["experiment", "run", SPEC, "--out", "{dir}", "--resume"], ["metadata.json"]),
    "port_huge": (["explore", "--port", "70000"], ["--port", "65,535"]),
    "port_zero": (["explore", "--port", "0"], ["--port"]),
    "port_negative": (["explore", "--port", "-1"], ["--port"]),
    "port_text": (["explore", "--port", "http"], ["--port"]),
    "explore_bad_scenario": (["explore", "{corpus}/scenarios/inf_base_rate.yaml"], ["incidents.hazard.base_rate"]),
    "compare_same_names": (["compare", "default", "default"], ["must differ"]),
    "compare_reps_zero": (["compare", "default", "lever_fusion", "--reps", "0"], ["--reps"]),
    "compare_reps_huge": (["compare", "default", "lever_fusion", "--reps", "100001"], ["--reps", "100,000"]),
    "compare_days_huge": (["compare", "default", "lever_fusion", "--days", "1000000000"], ["--days"]),
    "compare_workers_zero": (["compare", "default", "lever_fusion", "--workers", "0"], ["--workers"]),
    "compare_bad_baseline": (["compare", "default", "lever_fusion", "--baseline", "nope"], ["--baseline"]),
    "compare_out_file": (["compare", "default", "lever_fusion", "--reps", "1", "--out", "{file}"], ["is a file"]),
    "compare_bad_set": (["compare", "default", "lever_fusion", "--set", "grids.count=true"], ["grids.count"]),
    "validate_not_utf8": (["validate", "{corpus}/scenarios/latin1.yaml"], ["latin1.yaml", "UTF-8"]),
    "validate_bad_set": (["validate", "default", "--set", "fusion.enabled=2"], ["fusion.enabled"]),
    "plot_missing_dir": (["plot", "nowhere", "--kind", "timeseries"], ["nowhere"]),
    "plot_bad_kind": (["plot", "{dir}", "--kind", "bogus"], ["--kind"]),
    "report_file": (["report", "{file}"], ["not a results directory"]),
    "status_missing_dir": (["experiment", "status", "nowhere"], ["nowhere"]),
    "analyze_missing_dir": (["experiment", "analyze", "nowhere"], ["nowhere"]),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_command_line_refused(case, sandbox, capsys):
    argv, needles = CLI_CASES[case]
    if "/proc/govsim-out" in argv and not PROC:
        pytest.skip("needs Linux's /proc (a directory nobody can create entries in)")
    a_file = sandbox / "a_file.txt"
    a_file.write_text("not a directory\n")
    a_dir = sandbox / "a_dir"
    a_dir.mkdir()
    (a_dir / "keep.txt").write_text("precious\n")
    subs = {"{file}": str(a_file), "{dir}": str(a_dir), "{corpus}": str(FUZZ)}
    argv = [_sub(a, subs) for a in argv]
    needles = [_sub(n, subs) for n in needles]
    assert_refused(argv, needles, capsys, sandbox)
    assert (a_dir / "keep.txt").read_text() == "precious\n"


def _sub(text: str, subs: dict[str, str]) -> str:
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


# --------------------------------------------------------------------------- corrupt results
def _garbage(path: Path) -> None:
    path.write_bytes(b"PAR1 this is not parquet \x00\x01\x02")


def _truncated(path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"run_id": ["r1"], "status": ["done"], "scenario": ["a"]}).to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[:-20])


GOOD_META = {"schema_version": 1, "kind": "experiment", "name": "x",
             "runs_planned_by_scenario": {"a": 1}, "design": {"kind": "full_factorial"},
             "outcomes": ["harm"]}
# name -> (function(dir) that damages a results directory, strings the message must contain)
CORRUPTIONS = {
    "meta_not_json": (lambda d: (d / "metadata.json").write_text("{not json"), ["metadata.json", "JSON"]),
    "meta_empty_object": (lambda d: (d / "metadata.json").write_text("{}"), ["metadata.json"]),
    "meta_list": (lambda d: (d / "metadata.json").write_text("[1, 2]"), ["metadata.json", "object"]),
    "meta_empty_file": (lambda d: (d / "metadata.json").write_text(""), ["metadata.json"]),
    "meta_not_utf8": (lambda d: (d / "metadata.json").write_bytes(b'{"kind": "\xff"}'), ["metadata.json", "UTF-8"]),
    "meta_unknown_kind": (lambda d: (d / "metadata.json").write_text('{"kind": "bogus"}'), ["metadata.json", "bogus"]),
    "meta_kind_number": (lambda d: (d / "metadata.json").write_text('{"kind": 5}'), ["metadata.json", "kind"]),
    "meta_is_directory": (lambda d: (d / "metadata.json").mkdir(), ["metadata.json"]),
    "meta_missing": (lambda d: None, ["no metadata.json"]),
    "meta_deep": (lambda d: (d / "metadata.json").write_text("[" * 100_000 + "]" * 100_000), ["metadata.json"]),
    "runs_garbage": (lambda d: (_meta(d), _garbage(d / "runs.parquet")), ["runs.parquet", "Parquet"]),
    "runs_truncated": (lambda d: (_meta(d), _truncated(d / "runs.parquet")), ["runs.parquet", "Parquet"]),
    "runs_empty_file": (lambda d: (_meta(d), (d / "runs.parquet").write_bytes(b"")), ["runs.parquet"]),
    "part_garbage": (lambda d: (_meta(d), (d / "runs").mkdir(), _garbage(d / "runs" / "0001.parquet")),
                     ["0001.parquet", "Parquet"]),
    "timeseries_garbage": (lambda d: (_meta(d), _truncated(d / "runs.parquet"), _garbage(d / "timeseries.parquet")),
                           ["Parquet"]),
}


def _meta(d: Path) -> None:
    (d / "metadata.json").write_text(json.dumps(GOOD_META))


RESULT_COMMANDS = {
    "report": lambda d: ["report", str(d)],
    "plot": lambda d: ["plot", str(d), "--kind", "timeseries"],
    "status": lambda d: ["experiment", "status", str(d)],
    "analyze": lambda d: ["experiment", "analyze", str(d)],
}


@pytest.mark.parametrize("command", sorted(RESULT_COMMANDS))
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_results_directory_refused(command, corruption, sandbox, capsys):
    d = sandbox / "res"
    d.mkdir()
    damage, needles = CORRUPTIONS[corruption]
    damage(d)
    text = assert_refused(RESULT_COMMANDS[command](d), needles, capsys, sandbox)
    assert "res" in text  # the directory is named


# --------------------------------------------------------------------------- names and locations
@pytest.mark.parametrize("name, expected", [
    ("../../../x", "x"), ("/abs/path", "abs_path"), ("..", "run"), (".", "run"), ("", "run"),
    ("-rf", "rf"), ("a b\nc", "a_b_c"), ("default", "default"), ("x" * 500, "x" * 80),
    ("name/../../etc", "name_.._.._etc"),
])
def test_safe_name(name, expected):
    out = safe_name(name)
    assert out == expected
    assert "/" not in out and not out.startswith(".") and Path(out).name == out


def test_run_directory_name_comes_from_a_safe_name(sandbox, capsys, monkeypatch):
    """A scenario named ../../x: its default results directory lies inside results/."""
    from sim import cli

    seen = {}

    def stop(path, **kw):  # the check before any simulation: record where, then stop
        seen["out"] = Path(path)
        raise cli.UsageError("stop here")

    monkeypatch.setattr(cli.check, "out_dir", stop)
    for name in ("../../../escape", "/abs/escape", ".."):
        f = sandbox / "named.yaml"
        f.write_text(yaml.safe_dump({"name": name}))
        code, text = run_cli(["run", str(f), "--days", "2"], capsys)
        assert code == 2 and "stop here" in text
        out = seen["out"].resolve()
        assert out.parent == (sandbox / "results").resolve(), out


def test_output_checks(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    for bad in (f, f / "sub", *([Path("/proc/govsim-out")] if PROC else [])):
        with pytest.raises(InputError):
            check_output_dir(bad)
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking writes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


# --------------------------------------------------------------------------- real processes
def _govsim(*args: str, cwd: Path, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sim", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc, time.monotonic() - t0


@pytest.mark.parametrize("args, needle", [
    (["run", str(FUZZ / "scenarios" / "alias_bomb_description.yaml"), "--out", "out"], "aliases"),
    (["validate", str(FUZZ / "scenarios" / "deep_flow_list.yaml")], "nested deeper"),
    (["run", str(FUZZ / "scenarios" / "latin1.yaml"), "--out", "out"], "UTF-8"),
    (["experiment", "run", str(FUZZ / "experiments" / "range_high_inf.yaml"), "--out", "out"], "high"),
    (["run", "default", "--out", "a_file.txt"], "is a file"),
])
def test_subprocess_refusals(tmp_path, args, needle):
    (tmp_path / "a_file.txt").write_text("x")
    before = _listing(tmp_path)
    proc, seconds = _govsim(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert _listing(tmp_path) == before
    assert seconds < 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_unreachable_scheduler_fails_fast_and_writes_nothing(tmp_path):
    spec = tmp_path / "ok.yaml"
    spec.write_text(
        "name: ok\nscenarios:\n  - {label: a, scenario: default.yaml, set: {city.width: 12,"
        " city.height: 12, city.population: 4000, admin.townships: 2, admin.communities: 3,"
        " grids.count: 8}}\nseed: 1\ndays: 5\nwarmup_days: 1\n")
    port = _free_port()
    before = _listing(tmp_path)
    proc, seconds = _govsim("experiment", "run", str(spec), "--out", str(tmp_path / "out"),
                            "--scheduler", f"tcp://127.0.0.1:{port}", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--scheduler" in proc.stderr and "Traceback" not in proc.stderr
    assert _listing(tmp_path) == before  # no stray metadata.json, no lock file
    # a few seconds of connect timeout (plus the interpreter's start-up and imports)
    assert seconds < 40, seconds
