"""Faults and concurrency (issue 12; docs/reliability.md): a batch survives a lost worker with
every run recorded once, leaves no process behind when it is killed, refuses a second writer,
compacts to one copy of every run, never ends with status "running" after an exception; and
the fast commands import neither Mesa nor the model.

The batches are tiny (a 12 x 12 city, 20 days, 2 workers) and the process tests watch
``/proc`` (Linux).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.batch import ExperimentError, load, run_experiment
from sim.batch.pool import KILL_ENV, KILL_ONCE_ENV
from sim.batch.results import lock_path, one_copy_per_run, results_lock, run_owners
from sim.batch.runner import FLUSH_ENV, BatchError
from sim.batch.store import ResultStore, RunOutput

ROOT = Path(__file__).resolve().parent.parent
LINUX = sys.platform.startswith("linux")

TINY = ("{city.width: 12, city.height: 12, city.population: 4000, admin.townships: 2,"
        " admin.communities: 3, grids.count: 8, police.officers: 4, volunteers.community: 800,"
        " volunteers.volunteer_police: 6, volunteers.riders: 10}")
KEYS = {"runs": ["run_id"], "timeseries": ["run_id", "day"], "incidents": ["run_id", "incident_id"]}


def write_spec(tmp_path: Path, reps: int = 6, days: int = 20, name: str = "faults") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(
        f"name: {name}\nscenarios:\n  - {{label: a, scenario: default.yaml, set: {TINY}}}\n"
        "factors:\n  grids.count: [6, 8]\ndesign: {kind: full_factorial}\n"
        f"replications: {reps}\nseed: 7\ndays: {days}\nwarmup_days: 5\n"
        "outputs: {timeseries: true, timeseries_every: 5, incidents: true}\n")
    return p


def govsim(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def assert_each_run_once(path: Path, n_runs: int) -> None:
    """Every table holds every planned run, and no row twice."""
    res = load(path)
    assert len(res.runs) == n_runs and res.runs["run_id"].is_unique
    for table in ("timeseries", "incidents"):
        df = getattr(res, table)
        assert not df.duplicated(KEYS[table]).any(), f"duplicate rows in {table}"
        assert set(df["run_id"]) <= set(res.runs["run_id"])
    done = set(res.runs.loc[res.runs["status"] == "done", "run_id"])
    assert set(res.timeseries["run_id"]) == done
    # each run's timeseries once: the same number of rows for every run
    assert res.timeseries.groupby("run_id").size().nunique() == 1


def wait_for(condition, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def n_parts(path: Path) -> int:
    d = path / "runs"
    return len(list(d.glob("*.parquet"))) if d.is_dir() else 0


# --------------------------------------------------------------------------- /proc
def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0]


def descendants(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))) is not None:
            kids.setdefault(st[0], []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pids: list[int]) -> list[int]:
    return [p for p in pids if (st := _stat(p)) is not None and st[1] != "Z"]  # zombies are gone


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --------------------------------------------------------------------------- worker loss
@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="finds the pool's workers in /proc")
def test_worker_killed_mid_batch_completes_with_every_run_once(tmp_path):
    spec, out = write_spec(tmp_path, reps=10), tmp_path / "out"
    proc = govsim("experiment", "run", str(spec), "--out", str(out), "--workers", "2", "--quiet",
                  env={FLUSH_ENV: "1"})
    wait_for(lambda: n_parts(out) >= 2 or proc.poll() is not None, what="two finished runs")
    assert proc.poll() is None, finish(proc)
    forkserver = [p for p in descendants(proc.pid) if "forkserver" in cmdline(p)
                  and _stat(p) is not None and _stat(p)[0] == proc.pid]
    workers = [p for p in descendants(forkserver[0]) if _stat(p)[0] == forkserver[0]]
    assert workers, "no pool worker found"
    os.kill(workers[0], signal.SIGKILL)
    code, _, err = finish(proc)
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["runs_done"] == 20
    assert meta["worker_losses"], "the loss is recorded"
    assert_each_run_once(out, 20)


@pytest.mark.slow
def test_lost_runs_are_resubmitted_and_a_run_that_always_kills_its_worker_is_given_up(tmp_path):
    """The test hook makes the worker of r0001 kill itself (SIGKILL, like the OOM killer) the
    first time, and the worker of p00001-r0002 every time."""
    spec, out = write_spec(tmp_path, reps=4), tmp_path / "out"
    proc = govsim("experiment", "run", str(spec), "--out", str(out), "--workers", "2", "--quiet",
                  env={KILL_ONCE_ENV: "p00000-r0001", KILL_ENV: "p00001-r0002"})
    code, _, err = finish(proc)
    assert code == 1, err  # one failed run
    assert "Traceback" not in err
    assert "resubmitted after a worker process was lost" in err
    res = load(out)
    assert_each_run_once(out, 8)
    row = res.runs.set_index("run_id").loc["s00-p00001-r0002"]
    assert row["status"] == "failed"
    assert "lost 3 times" in row["error"] and "SIGKILL" in row["error"]
    assert (res.runs["status"] == "done").sum() == 7
    meta = json.loads((out / "metadata.json").read_text())
    blamed = [r for loss in meta["worker_losses"] for r in loss["lost_workers"]]
    assert blamed.count("s00-p00001-r0002") == 3 and blamed.count("s00-p00000-r0001") == 1
    assert meta["status"] == "complete_with_failures"

    # the same numbers as a batch without faults (here serial, in this process)
    ref = load(run_experiment(spec, out=tmp_path / "ref", workers=1), incidents=True)
    keep = res.runs["status"] == "done"
    cols = [c for c in ref.runs.columns if c not in ("wall_seconds", "error")]
    mine = res.runs.loc[keep, cols].reset_index(drop=True)
    theirs = ref.runs.loc[ref.runs["run_id"].isin(mine["run_id"]), cols].reset_index(drop=True)
    # (the failed row's missing metrics make some integer columns float here)
    pd.testing.assert_frame_equal(mine, theirs, check_dtype=False)
    sub = ref.incidents[ref.incidents["run_id"] != "s00-p00001-r0002"].reset_index(drop=True)
    pd.testing.assert_frame_equal(res.incidents, sub)


# --------------------------------------------------------------------------- orphans
@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="watches the batch's processes in /proc")
def test_parent_killed_leaves_no_process_of_the_batch(tmp_path):
    spec, out = write_spec(tmp_path, reps=10), tmp_path / "out"
    proc = govsim("experiment", "run", str(spec), "--out", str(out), "--workers", "2", "--quiet",
                  env={FLUSH_ENV: "1"})
    wait_for(lambda: n_parts(out) >= 2 or proc.poll() is not None, what="two finished runs")
    assert proc.poll() is None, finish(proc)
    family = descendants(proc.pid)
    kinds = " ".join(cmdline(p) for p in family)
    assert "forkserver" in kinds and "resource_tracker" in kinds and len(family) >= 4
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    wait_for(lambda: not alive(family), timeout=10, what=f"the batch's processes {alive(family)} to exit")
    # the lock died with the holder: resume completes the batch, every run once
    code, _, err = finish(govsim("experiment", "run", str(spec), "--out", str(out), "--workers",
                                 "2", "--resume", "--quiet"))
    assert code == 0, err
    assert_each_run_once(out, 20)


# --------------------------------------------------------------------------- two writers
@pytest.mark.slow
def test_second_batch_into_the_same_directory_is_refused_at_once(tmp_path):
    spec, out = write_spec(tmp_path, reps=10), tmp_path / "out"
    first = govsim("experiment", "run", str(spec), "--out", str(out), "--workers", "2", "--quiet",
                   env={FLUSH_ENV: "1"})
    holder = lock_path(out).with_name(lock_path(out).name + ".json")
    wait_for(lambda: holder.exists() or first.poll() is not None, what="the first batch's lock")
    assert first.poll() is None, finish(first)
    t0 = time.time()
    # --force must not take a directory another process is writing
    code, _, err = finish(govsim("experiment", "run", str(spec), "--out", str(out), "--force",
                                 "--workers", "2", "--quiet"), timeout=120)
    assert code == 2 and "Traceback" not in err
    assert str(first.pid) in err and out.name in err and "being written" in err
    assert first.poll() is None or time.time() - t0 < 60
    code, _, err = finish(first)
    assert code == 0, err
    assert_each_run_once(out, 20)
    assert not holder.exists()  # released


def test_run_force_cannot_replace_a_directory_in_use(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with results_lock(out):
        code, _, err = finish(govsim("run", "default", "--days", "3", "--out", str(out), "--force",
                                     "--quiet", "--set", "city.population=4000"), timeout=120)
    assert code == 2 and "Traceback" not in err
    assert str(os.getpid()) in err and str(out.resolve()) in err.replace("\n", "")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_batch_api_refuses_a_held_directory_and_writes_nothing(tmp_path):
    spec, out = write_spec(tmp_path, reps=1), tmp_path / "out"
    with results_lock(out), pytest.raises(ExperimentError, match="being written by process"):
        run_experiment(spec, out=out, workers=1)
    assert not out.exists()
    with results_lock(out):  # released after the refusal, and after our own hold
        pass


# --------------------------------------------------------------------------- compaction
def _outputs(run_ids: list[str], tag: str) -> list[RunOutput]:
    outs = []
    for r in run_ids:
        row = {"run_id": r, "status": "done", "scenario": "a", "tag": tag}
        ts = pd.DataFrame({"run_id": r, "day": [0, 1, 2], "tag": tag})
        inc = pd.DataFrame({"run_id": r, "incident_id": [0, 1], "tag": tag})
        outs.append(RunOutput(row, ts, inc))
    return outs


def test_compaction_keeps_one_copy_of_every_run_in_every_table(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_outputs(["r0", "r1"], "old"))
    time.sleep(0.01)
    store.write(_outputs(["r1", "r2"], "new"))  # r1 recorded twice (a crash, a race)
    store.write(_outputs(["r2"], "new") + _outputs(["r2"], "new"))  # twice in one part
    # a load before compaction already sees one copy
    assert one_copy_per_run(
        [(p.stem, pd.read_parquet(p)) for p in sorted((tmp_path / "runs").glob("*"))], "runs",
    )["run_id"].tolist() == ["r0", "r1", "r2"]
    store.compact()
    for table, key in KEYS.items():
        df = pd.read_parquet(tmp_path / f"{table}.parquet")
        assert not df.duplicated(key).any(), table
        assert sorted(df["run_id"].unique()) == ["r0", "r1", "r2"]
        # every table keeps the same copy of r1: the newest runs row's
        assert set(df.loc[df["run_id"] == "r1", "tag"]) == {"new"}, table
    assert len(pd.read_parquet(tmp_path / "timeseries.parquet")) == 9
    # a later session that records r0 again replaces its rows in every table
    store.write(_outputs(["r0"], "again"))
    store.compact()
    ts = pd.read_parquet(tmp_path / "timeseries.parquet")
    assert len(ts) == 9 and set(ts.loc[ts["run_id"] == "r0", "tag"]) == {"again"}


def test_rows_of_a_run_no_runs_part_records_are_dropped():
    runs = [("1", pd.DataFrame({"run_id": ["a"]}))]
    ts = [("1", pd.DataFrame({"run_id": ["a", "b"], "day": [0, 0]}))]
    assert one_copy_per_run(ts, "timeseries", run_owners(runs))["run_id"].tolist() == ["a"]


# --------------------------------------------------------------------------- stopped batches
class _FailingExecutor(cf.ThreadPoolExecutor):
    """Accepts two runs, then fails as a broken cluster connection would."""

    def __init__(self):
        super().__init__(max_workers=1)
        self.n = 0

    def submit(self, fn, /, *args, **kwargs):
        self.n += 1
        if self.n > 2:
            raise ConnectionError("scheduler went away")
        return super().submit(fn, *args, **kwargs)


def test_an_exception_leaves_status_stopped_and_says_how_to_resume(tmp_path):
    spec, out = write_spec(tmp_path, reps=2), tmp_path / "out"
    with _FailingExecutor() as ex, pytest.raises(BatchError) as err:
        run_experiment(spec, ex, out=out)
    msg = str(err.value)
    assert "scheduler went away" in msg and "--resume" in msg and str(out) in msg
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "stopped" and "ConnectionError" in meta["error"]
    # and resuming completes it
    run_experiment(spec, out=out, resume=True, workers=1)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "complete" and "error" not in meta
    assert_each_run_once(out, 4)


# --------------------------------------------------------------------------- start-up
def test_fast_commands_import_neither_mesa_nor_the_model(tmp_path):
    """``import sim.cli`` and the commands --help, validate, scenarios and experiment status
    (checked in a fresh interpreter after each)."""
    batch = run_experiment(write_spec(tmp_path, reps=1, days=6), out=tmp_path / "batch", workers=1)
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        heavy = ("mesa", "sim.model", "scipy", "matplotlib")
        def check(what):
            loaded = [m for m in heavy if m in sys.modules]
            assert not loaded, f"{{what}} imported {{loaded}}"
        import sim.cli
        check("import sim.cli")
        assert "pydantic" not in sys.modules, "import sim.cli imported pydantic"
        from sim.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["--help"])
            except SystemExit as e:
                assert e.code == 0
            check("--help")
            assert main(["validate", "{ROOT / 'scenarios' / 'default.yaml'}"]) == 0
            check("validate")
            assert main(["scenarios"]) == 0
            check("scenarios")
            assert main(["experiment", "status", "{batch}"]) == 0
            check("experiment status")
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_package_still_exports_the_model_lazily():
    import sim

    assert sim.GovernanceModel.__name__ == "GovernanceModel"
    assert "load_scenario" in dir(sim)
    with pytest.raises(AttributeError):
        sim.no_such_name  # noqa: B018
