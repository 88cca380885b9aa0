"""The ``govsim`` command line (also ``python -m sim``).

Commands::

    govsim run SCENARIO [--days N] [--seed S] [--warmup W] [--out DIR] [--set k=v ...] [--quiet]
    govsim scenarios            list the shipped scenario files
    govsim validate FILE...     check scenario files without running anything
    govsim experiment run SPEC [--workers N] [--scheduler ADDRESS] [--out DIR] [--resume] [--force]
    govsim experiment status DIR
    govsim experiment analyze DIR
    govsim compare SCENARIO_A SCENARIO_B [...] [--reps R] [--days N] [--seed S] [--workers N]
                   [--baseline A] [--out DIR] [--set k=v ...] [--posterior DIR [--members N]]
    govsim plot DIR --kind KIND [--outcome NAME] [--out FILE.png]
    govsim report DIR [--out report.html]
    govsim explore [SCENARIO] [--host 127.0.0.1] [--port 8765]

Exit status: 0 on success, 2 on bad input (a wrong scenario file, override or option; nothing is
written), 1 on an unexpected failure.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim import cli_checks as check  # option types and the checks made before any work
from sim.cli_checks import UsageError
from sim.paths import SCENARIO_DIR

if TYPE_CHECKING:
    from rich.console import Console

EXIT_BAD_INPUT = 2
# sim.analysis.plots.KINDS, kept here so that the parser does not import matplotlib (tests check they agree)
PLOT_KINDS = ("timeseries", "forest", "ecdf", "map", "factor", "sensitivity", "attribution",
              "fit", "posterior", "pairs", "implausibility")


# Imports happen in the commands that need them: `govsim --help`, `validate`, `scenarios` and
# `experiment status` load neither Mesa nor the model, and `--help` not even pydantic or rich
# (start-up time: docs/performance.md; tests/test_faults.py checks what `import sim.cli` loads).
def load_scenario(*args: Any, **kwargs: Any):
    from sim.scenario import load_scenario as load

    return load(*args, **kwargs)


def parse_set_option(text: str) -> tuple[str, Any]:
    from sim.scenario import parse_set_option as parse

    return parse(text)


def _scenario_error() -> type[Exception]:
    from sim.scenario import ScenarioError

    return ScenarioError


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output (logs, CI) gets a wide console so tables do not wrap into unreadable cells
    width = None if stream.isatty() or "COLUMNS" in __import__("os").environ else 140
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in pairs or []:
        key, value = parse_set_option(text)
        out[key] = value
    return out


def _esc(text: Any) -> str:
    """Text shown through rich with its square brackets escaped: names and messages come from
    user files and must never be read as markup (``[/bold]`` in a name would raise)."""
    from rich.markup import escape

    return escape(str(text))


# --------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from sim.analysis.tables import summary_table
    from sim.batch.results import default_run_dir, now_iso, results_lock, write_run
    from sim.files import safe_name
    from sim.model import GovernanceModel

    scenario = load_scenario(args.scenario, _overrides(args.set))
    days = args.days if args.days is not None else scenario.days
    warmup = args.warmup if args.warmup is not None else min(scenario.warmup_days, days - 1)
    if warmup >= days:
        raise UsageError(f"--warmup ({warmup}) must be less than --days ({days})")
    seed = args.seed if args.seed is not None else scenario.seed
    # the scenario's name is text from a file: made safe before it becomes a directory name
    out = Path(args.out) if args.out else default_run_dir(safe_name(scenario.name, fallback="run"))
    check.out_dir(out, force=args.force)  # before the simulation, not after it
    console = _console()
    quiet = args.quiet
    if not quiet:
        console.print(f"[bold]{_esc(scenario.name)}[/bold]:"
                      f" {_esc(scenario.description.strip() or '(no description)')}")
        console.print(f"seed {seed}, {days} days (first {warmup} left out of the summary)")
    # one writer per directory, from before the simulation until the results are in place: a
    # second `run` (even with --force) or a batch into `out` is refused at once (exit 2)
    with results_lock(out):
        started = now_iso()
        t0 = time.perf_counter()
        model = GovernanceModel(scenario, rng=seed)
        model.run(days, progress=not quiet)
        wall = time.perf_counter() - t0
        if out.exists() and args.force:
            shutil.rmtree(out)
        write_run(model, out, warmup_days=warmup, wall_seconds=wall, started=started,
                  incidents=not args.no_incidents)
    summary = model.summary(warmup)
    if not quiet:
        console.print(summary_table(summary, title=f"{_esc(scenario.name)}: days {warmup + 1}-{days},"
                                                   f" seed {seed}"))
        console.print(f"{days} days in {wall:.1f} s. Results: [bold]{out}[/bold]")
    else:
        console.print(str(out))
    return 0


# --------------------------------------------------------------------------- scenarios
def cmd_scenarios(args: argparse.Namespace) -> int:
    from rich.table import Table

    t = Table(title=f"Scenarios in {SCENARIO_DIR}")
    t.add_column("name")
    t.add_column("people", justify="right")
    t.add_column("grids", justify="right")
    t.add_column("description")
    for path in sorted(SCENARIO_DIR.glob("*.yaml")):
        try:
            s = load_scenario(path)
            t.add_row(path.stem, f"{s.city.population:,}", f"{s.grids.count:,}",
                      s.description.strip().split("\n")[0])
        except _scenario_error() as exc:
            t.add_row(path.stem, "", "", f"[red]invalid: {_esc(exc)}[/red]")
    _console().print(t)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    console = _console()
    bad = 0
    for f in args.files:
        try:
            s = load_scenario(f, _overrides(args.set))
            console.print(f"[green]ok[/green] {_esc(f)} ({_esc(s.name)}, digest {s.digest()[:12]})")
        except _scenario_error() as exc:
            bad += 1
            _console(stderr=True).print(f"[red]error:[/red] {_esc(exc)}")
    return EXIT_BAD_INPUT if bad else 0


# --------------------------------------------------------------------------- experiments
def cmd_experiment_run(args: argparse.Namespace) -> int:
    from sim.batch import load_experiment, run_experiment
    from sim.batch.results import DEFAULT_RESULTS_DIR

    exp = load_experiment(args.spec)  # validates everything before any work
    # where the results go, and the cluster, checked before anything is written
    out = Path(args.out) if args.out else DEFAULT_RESULTS_DIR / exp.spec.name
    check.out_dir(out, force=args.force, resume=args.resume,
                   exists_hint="add --resume to continue it or --force to start over")
    if args.resume and out.is_dir() and any(out.iterdir()):
        check.results_dir(str(out))
    console = _console()
    if not args.quiet:
        where = (f"Dask scheduler {args.scheduler}" if args.scheduler else
                 "1 worker (serial)" if args.workers == 1 else f"{args.workers or 'all'} worker processes")
        console.print(f"[bold]{exp.spec.name}[/bold]: {len(exp.base)} scenario(s) x {len(exp.points)} design"
                      f" point(s) x {exp.spec.replications} replication(s) = {exp.n_runs} runs of"
                      f" {exp.spec.days} days on {_esc(where)}")
    with _dask_client(args.scheduler) as client:
        path = _run_batch(run_experiment, exp, client, out=out, resume=args.resume,
                          force=args.force, workers=args.workers,
                          scheduler=None if client else args.scheduler, progress=not args.quiet)
    if isinstance(path, int):
        return path
    status = _status_table(path)
    console.print(status)
    _print_worker_losses(path)
    console.print(f"Results: [bold]{path}[/bold]")
    from sim.batch import experiment_status

    failed = int(experiment_status(path).iloc[-1]["failed"])
    if failed:
        _console(stderr=True).print(
            f"[red]{failed} run(s) failed[/red]: their tracebacks are in the 'error' column of runs.parquet;"
            " fix the cause and re-run with --resume to retry them")
        return 1
    return 0


@contextlib.contextmanager
def _dask_client(scheduler: str | None) -> Iterator[Any]:
    """A Dask client connected to ``scheduler`` (checked at once, with a clear error), closed
    afterwards; None for no scheduler or ``local`` (the runner starts a LocalCluster itself)."""
    client = None
    if scheduler and scheduler != "local":
        client = check.connect_scheduler(scheduler)
    try:
        yield client
    finally:
        if client is not None:
            client.close()


def _batch_error() -> type[Exception]:
    from sim.batch.runner import BatchError

    return BatchError


def _print_worker_losses(path: Path) -> None:
    from sim.batch.runner import worker_loss_note

    if note := worker_loss_note(path):
        _console(stderr=True).print(f"[yellow]{_esc(note)}[/yellow]")


def _run_batch(run_experiment, *args, **kwargs) -> Path | int:
    """``run_experiment(*args, **kwargs)``, or the exit status when it was interrupted (130) or
    stopped (1, with the message saying how to resume)."""
    try:
        return run_experiment(*args, **kwargs)
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted: finished runs are saved; continue with --resume")
        return 130
    except _batch_error() as exc:  # says how to resume
        _console(stderr=True).print(f"[red]error:[/red] {_esc(exc)}")
        return 1


def _status_table(path):
    from rich.table import Table

    from sim.batch import experiment_status

    df = experiment_status(path)
    t = Table(title=f"Runs in {path}")
    for c in df.columns:
        t.add_column(c, justify="left" if c == "scenario" else "right")
    for _, row in df.iterrows():
        t.add_row(*(str(v) for v in row.tolist()))
    return t


def cmd_experiment_status(args: argparse.Namespace) -> int:
    from sim.batch import ExperimentError

    path = check.results_dir(args.dir)
    try:
        with check.reading(path):
            _console().print(_status_table(path))
    except ExperimentError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_experiment_analyze(args: argparse.Namespace) -> int:
    from sim.analysis.sensitivity import analyze, format_tables

    path = check.results_dir(args.dir)
    try:
        with check.reading(path):
            frames = analyze(path)
    except ValueError as exc:
        raise UsageError(f"{exc} (if the batch is incomplete, finish it with `govsim experiment run SPEC"
                         f" --out {path} --resume`)") from None
    console = _console()
    for table in format_tables(frames, conf_level=0.95):
        console.print(table)
    console.print(f"Written to [bold]{path / 'analysis'}[/bold]")
    return 0


# --------------------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> int:
    from sim.analysis.compare import compare
    from sim.analysis.tables import comparison_table
    from sim.batch import build_experiment, run_experiment
    from sim.batch.results import DEFAULT_RESULTS_DIR, load
    from sim.files import atomic_write, atomic_write_parquet, safe_name

    labels = [Path(s).stem for s in args.scenarios]
    if len(set(labels)) != len(labels):
        raise UsageError(f"scenario names must differ, got {labels}")
    if args.baseline and args.baseline not in labels:
        raise UsageError(f"--baseline {args.baseline!r} is not one of {labels}")
    if args.posterior:
        return _compare_posterior(args)
    if args.members is not None:
        raise UsageError("--members needs --posterior DIR (the calibration whose members to run)")
    first = load_scenario(args.scenarios[0])
    days = args.days or first.days
    warmup = args.warmup if args.warmup is not None else min(first.warmup_days, days - 1)
    sets = _overrides(args.set)
    raw = {
        "name": safe_name("compare-" + "-vs-".join(labels), limit=100),
        "description": "govsim compare " + " ".join(args.scenarios),
        "scenarios": [{"label": label, "scenario": str(Path(s).resolve()) if Path(s).is_file() else s,
                       "set": sets} for label, s in zip(labels, args.scenarios, strict=True)],
        "replications": args.reps,
        "seed": args.seed if args.seed is not None else first.seed,
        "days": days,
        "warmup_days": warmup,
        "outputs": {"timeseries": True, "timeseries_every": 1, "incidents": False},
    }
    exp = build_experiment(raw, "govsim compare", base_dir=Path.cwd(), kind="comparison")
    out = Path(args.out) if args.out else DEFAULT_RESULTS_DIR / exp.spec.name
    check.out_dir(out, force=args.force, resume=args.resume,
                   exists_hint="add --resume to continue it or --force to start over")
    console = _console()
    console.print(f"Comparing {_esc(', '.join(labels))}: {args.reps} paired replications of {days} days"
                  f" (seed {raw['seed']}; replication i shares its seed across scenarios)")
    path = _run_batch(run_experiment, exp, out=out, resume=args.resume, force=args.force,
                      workers=args.workers, progress=True)
    if isinstance(path, int):
        return path
    _print_worker_losses(path)
    res = load(path, incidents=False)
    table = compare(res, baseline=args.baseline or labels[0])
    atomic_write(path / "comparison.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write_parquet(path / "comparison.parquet", table)
    console.print(comparison_table(table))
    console.print(f"Results: [bold]{path}[/bold] (comparison.csv beside the runs)")
    failed = int((res.runs["status"] != "done").sum())
    return 1 if failed else 0


def _compare_posterior(args: argparse.Namespace) -> int:
    """``compare --posterior DIR``: every scenario at each member of a calibration's posterior
    (:func:`sim.calibration.posterior.posterior_compare`)."""
    import pandas as pd

    from sim.calibration.posterior import TABLE_FILE, default_out, format_table, posterior_compare

    out = Path(args.out) if args.out else default_out(args.scenarios)
    check.out_dir(out, force=args.force, resume=args.resume,
                   exists_hint="add --resume to continue it or --force to start over")
    console = _console()
    path = _run_batch(posterior_compare, args.scenarios, args.posterior,
                      members=args.members or 20, reps=args.reps, days=args.days,
                      warmup=args.warmup, seed=args.seed, sets=_overrides(args.set),
                      baseline=args.baseline, out=out, workers=args.workers, resume=args.resume,
                      force=args.force, progress=True,
                      note=lambda text: console.print(f"Comparing under the posterior: "
                                                      f"{_esc(text)}"))
    if isinstance(path, int):
        return path
    _print_worker_losses(path)
    console.print(format_table(pd.read_parquet(path / f"{TABLE_FILE}.parquet")))
    console.print(f"Results: [bold]{path}[/bold] ({TABLE_FILE}.csv beside the runs)")
    status = pd.read_parquet(path / "runs.parquet", columns=["status"])["status"]
    return 1 if (status != "done").any() else 0


# --------------------------------------------------------------------------- calibration
def _batch_options(p: argparse.ArgumentParser, default_out: str, what: str) -> None:
    """The options of a command that runs a batch: where (workers, Dask), the results directory,
    resuming, starting over, quiet."""
    p.add_argument("--workers", type=check.workers_option,
                   help="worker processes (1 = serial; default: all cores)")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:port), or 'local' for a"
                                       " LocalCluster")
    p.add_argument("--out", help=f"results directory (default: {default_out})")
    p.add_argument("--resume", action="store_true", help=f"continue an interrupted {what} in --out")
    p.add_argument("--force", action="store_true",
                   help="delete an existing results directory and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_calibrate_parser(sub: Any) -> None:
    """The ``calibrate`` sub-command of ``govsim``."""
    c = sub.add_parser(
        "calibrate", help="fit the model's free parameters to a city's figures (an ensemble)",
        description="Screening, history matching with Gaussian-process emulators and ABC-SMC:"
                    " a weighted ensemble of parameter sets that reproduce the fit targets, the"
                    " hold-out targets predicted from it, and the fit table. docs/calibration.md")
    c.add_argument("spec", help="a calibration file (path, or a name under calibration/, e.g."
                                " pingxiang)")
    _batch_options(c, "results/calibrate-<name>", "calibration")
    c.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sim.batch.results import DEFAULT_RESULTS_DIR
    from sim.calibration import load_calibration, run_calibration
    from sim.calibration.tables import fit_table, identifiability_table

    cal = load_calibration(args.spec)  # validates everything before any model run
    out = Path(args.out) if args.out else DEFAULT_RESULTS_DIR / f"calibrate-{cal.spec.name}"
    check.out_dir(out, force=args.force, resume=args.resume,
                  exists_hint="add --resume to continue it or --force to start over")
    console = _console()
    m = cal.spec.method
    console.print(
        f"[bold]{cal.spec.name}[/bold]: {len(cal.parameters)} parameters, "
        f"{len(cal.fit_targets())} fit targets ({len(cal.targets) - len(cal.fit_targets())} held"
        f" out or checks); screening, {m.history_matching.waves} history-matching waves of"
        f" {m.history_matching.points} points, ABC-SMC {m.abc.generations} x {m.abc.particles};"
        f" runs of {cal.spec.days} days x {cal.spec.replications} replication(s)")

    def note(text: str) -> None:
        console.print(f"[cyan]{_esc(text)}[/cyan]")

    with _dask_client(args.scheduler) as client:
        path = _run_batch(run_calibration, cal, out=out, executor=client, workers=args.workers,
                          scheduler=None if client else args.scheduler, resume=args.resume,
                          force=args.force, progress=not args.quiet, note=note)
    if isinstance(path, int):
        return path
    from sim.calibration.results import load

    res = load(path)
    console.print(fit_table(res.fit))
    console.print(identifiability_table(res.identifiability))
    for w in res.metadata.get("warnings", []):
        _console(stderr=True).print(f"[yellow]warning:[/yellow] {_esc(w)}")
    console.print(f"{res.metadata.get('model_runs', 0)} model runs in all."
                  f" Results: [bold]{path}[/bold] (fit.csv, ensemble.parquet,"
                  " scenarios/calibrated/)")
    return 0


# --------------------------------------------------------------------------- plots, report, explorer
def cmd_plot(args: argparse.Namespace) -> int:
    from sim.analysis.plots import plot_command

    path = check.results_dir(args.dir)
    check.out_file(args.out)
    try:
        with check.reading(path):
            out = plot_command(path, args.kind, outcome=args.outcome, out=args.out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _console().print(f"Wrote [bold]{out}[/bold]")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sim.analysis.report import write_report

    path = check.results_dir(args.dir)
    check.out_file(args.out)
    with check.reading(path):
        out = write_report(path, out=args.out)
    _console().print(f"Wrote [bold]{out}[/bold] (self-contained: open it in any browser)")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from sim.explorer.app import serve

    if args.scenario:
        load_scenario(args.scenario)  # a bad scenario fails here, before the server starts
    return serve(args.scenario, host=args.host, port=args.port)


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message style
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="govsim", description="Agent-based model of grid-based community governance.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run one scenario and write its results",
                       description="Run one scenario, print a summary table and write runs.parquet, "
                                   "timeseries.parquet, incidents.parquet and metadata.json.")
    r.add_argument("scenario", help="a file under scenarios/ (e.g. default) or a path to a YAML file")
    r.add_argument("--days", type=check.days_option(),
                   help="days to simulate, 1-36,500 like a scenario file's days (default: the"
                        " scenario's days)")
    r.add_argument("--seed", type=check.non_negative("--seed"), help="root seed (default: the scenario's seed)")
    r.add_argument("--warmup", type=check.non_negative("--warmup"),
                   help="days left out of the summary (default: the scenario's warmup_days)")
    r.add_argument("--out", help="results directory (default: results/<scenario>-<timestamp>)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a scenario value, e.g. --set grids.count=300 (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bar or table; print the results path")
    r.add_argument("--force", action="store_true", help="replace an existing --out directory")
    r.add_argument("--no-incidents", action="store_true", help="do not write incidents.parquet")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("scenarios", help="list the shipped scenarios")
    s.set_defaults(func=cmd_scenarios)

    v = sub.add_parser("validate", help="check scenario files without running them")
    v.add_argument("files", nargs="+")
    v.add_argument("--set", action="append", metavar="KEY=VALUE")
    v.set_defaults(func=cmd_validate)

    e = sub.add_parser("experiment", help="run, inspect and analyse experiment batches")
    esub = e.add_subparsers(dest="experiment_command", required=True, parser_class=_Parser)
    er = esub.add_parser("run", help="run (or resume) an experiment batch",
                         description="Run every run of an experiment file, writing each as it finishes.")
    er.add_argument("spec", help="an experiment file (path, or a name under experiments/)")
    _batch_options(er, "results/<experiment name>", "batch")
    er.set_defaults(func=cmd_experiment_run)
    es = esub.add_parser("status", help="counts of runs by status and scenario")
    es.add_argument("dir")
    es.set_defaults(func=cmd_experiment_status)
    ea = esub.add_parser("analyze", help="sensitivity indices or main effects of an experiment")
    ea.add_argument("dir")
    ea.set_defaults(func=cmd_experiment_analyze)

    c = sub.add_parser("compare", help="compare scenarios with paired replications",
                       description="Run each scenario R times with common random numbers and print each "
                                   "outcome's mean with a 95% interval and the paired difference to the baseline.")
    c.add_argument("scenarios", nargs="+", help="two or more scenario names or files")
    c.add_argument("--reps", default=10, help="replications per scenario (default 10); with"
                   " --posterior, per member: runs = members x reps x scenarios",
                   type=check.whole_number("--reps", schema_key=("experiment", "replications")))
    c.add_argument("--days", type=check.days_option(), help="days per run (default: the first scenario's days)")
    c.add_argument("--warmup", type=check.non_negative("--warmup"), help="days left out of the outcomes")
    c.add_argument("--seed", type=check.non_negative("--seed"), help="root seed (default: the first scenario's seed)")
    c.add_argument("--workers", type=check.workers_option, help="worker processes (default: all cores)")
    c.add_argument("--baseline", help="the scenario others are compared with (default: the first)")
    c.add_argument("--out", help="results directory (default: results/compare-A-vs-B)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override applied to every scenario")
    c.add_argument("--resume", action="store_true", help="continue an interrupted comparison")
    c.add_argument("--force", action="store_true", help="replace an existing results directory")
    c.add_argument("--posterior", metavar="DIR",
                   help="a finished calibration (govsim calibrate): run the scenarios at each of"
                        " its posterior members and split each effect's uncertainty into"
                        " parameters and chance (default --out results/compare-A-vs-B-posterior)")
    c.add_argument("--members", metavar="N", type=check.whole_number("--members", 1, 5000),
                   help="posterior members used with --posterior, 1-5,000 (default 20)")
    c.set_defaults(func=cmd_compare)

    _add_calibrate_parser(sub)

    pl = sub.add_parser("plot", help="draw a common plot of a results directory",
                        description="Draw one plot of a results directory from run, compare or experiment "
                                    "and save it as a PNG carrying the run's metadata.")
    pl.add_argument("dir", help="a results directory")
    pl.add_argument("--kind", required=True, choices=PLOT_KINDS)
    pl.add_argument("--outcome", help="the outcome (or, for ecdf, the grouping: first_channel or route)")
    pl.add_argument("--out", help="PNG file (default DIR/plots/<kind>-<outcome>.png)")
    pl.set_defaults(func=cmd_plot)

    rp = sub.add_parser("report", help="write a self-contained HTML report of a results directory")
    rp.add_argument("dir", help="a results directory")
    rp.add_argument("--out", help="HTML file (default DIR/report.html)")
    rp.set_defaults(func=cmd_report)

    ex = sub.add_parser("explore", help="the interactive explorer in the browser (SolaraViz)")
    ex.add_argument("scenario", nargs="?", help="the scenario to open (default: default)")
    ex.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ex.add_argument("--port", type=check.whole_number("--port", 1, 65535), default=8765,
                    help="TCP port, 1-65535 (default 8765)")
    ex.set_defaults(func=cmd_explore)
    return p


def main(argv: list[str] | None = None) -> int:
    from sim.files import InputError  # ScenarioError and ExperimentError are InputErrors

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, UsageError) as exc:
        _console(stderr=True).print(f"[red]error:[/red] {_esc(exc)}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted: nothing was written")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
