"""Checks of the command line's input before any work: option values, output locations,
results directories and a Dask scheduler.

Used by :mod:`sim.cli` (as ``check``); every failure is a :class:`UsageError` (exit status 2)
whose message names the option, file or directory and what is allowed. Heavy modules
(pydantic through the schemas, pyarrow, distributed) are imported inside the functions that
need them, so importing this module, and ``sim.cli``, stays cheap.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class UsageError(Exception):
    """Bad command-line input: reported with exit status 2."""


# --------------------------------------------------------------------------- option values
# Whole-number options: each has one allowed range, stated in its error message. Where a file
# key means the same thing (--days and a scenario's `days`, --reps and an experiment's
# `replications`), the range is read from that key's schema, so the two cannot disagree.
INT64_MAX = 2**63 - 1


def schema_range(model: str, key: str) -> tuple[int, int]:
    """``(lowest, highest)`` allowed by the ``ge``/``le`` bounds of a key of the scenario
    (``model="scenario"``) or experiment (``"experiment"``) schema."""
    from sim import schema

    if model == "scenario":
        from sim.scenario import Scenario as root
    else:
        from sim.batch.spec import ExperimentSpec as root
    info = schema.field_at(root, key)
    lo, hi = 0, INT64_MAX
    for m in info.metadata if info is not None else ():
        lo = m.ge if getattr(m, "ge", None) is not None else lo
        hi = m.le if getattr(m, "le", None) is not None else hi
    return int(lo), int(hi)


def whole_number(name: str, low: int | None = None, high: int | None = None, *,
                 schema_key: tuple[str, str] | None = None,
                 hint: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``[low, high]``, or in a schema key's range.

    Args:
        name: the option, for the message (``--days``).
        low, high: the range (default 0 and :data:`INT64_MAX`).
        schema_key: ``(model, key)`` whose bounds are the range (see :func:`schema_range`),
            read when the option is used (so ``--help`` does not load the schemas).
        hint: appended to the message, e.g. what the values mean.
    """
    def conv(text: str) -> int:
        lo, hi = schema_range(*schema_key) if schema_key else (low, high)
        lo = 0 if lo is None else lo
        hi = INT64_MAX if hi is None else hi
        allowed = (f"a whole number from {lo:,} to {hi:,}" if hi < INT64_MAX
                   else f"a whole number >= {lo:,}")
        try:
            v = int(text.strip().replace("_", ""))
        except ValueError:  # also text of more than 4,300 digits
            raise argparse.ArgumentTypeError(
                f"{name} must be {allowed}, not {text[:40]!r}{hint}") from None
        if not lo <= v <= hi:
            shown = f"{v:,}" if abs(v) < 10**30 else f"{str(v)[:12]}... ({len(str(v))} digits)"
            raise argparse.ArgumentTypeError(f"{name} must be {allowed}, not {shown}{hint}")
        return v
    return conv


def non_negative(name: str) -> Callable[[str], int]:
    """A whole number >= 0 (``--seed``, ``--warmup``)."""
    return whole_number(name, 0)


def days_option(name: str = "--days") -> Callable[[str], int]:
    """``--days``: the range of a scenario file's ``days`` (one rule for both)."""
    return whole_number(name, schema_key=("scenario", "days"))


def workers_option(text: str) -> int:
    """``--workers``: 1 (serial) to 4 per core; 0 is refused with what is allowed."""
    cores = os.cpu_count() or 1
    return whole_number(
        "--workers", 1, 4 * cores,
        hint=f" (1 = serial in this process; N = N worker processes, at most 4 per core on this"
             f" machine's {cores}; leave it out to use every core)")(text)


# --------------------------------------------------------------------------- output locations
def out_dir(path: Path, *, force: bool = False, resume: bool = False,
            exists_hint: str = "choose another --out or add --force") -> Path:
    """An output directory, checked before any simulation (:func:`sim.files.check_output_dir`):
    not a file, not under a file, creatable and writable, and empty unless ``force`` or
    ``resume``. ``exists_hint`` says what to do when it exists."""
    from sim.files import InputError, check_output_dir

    try:
        return check_output_dir(path, replace=force, resume=resume)
    except InputError as exc:
        msg = str(exc).replace("choose another --out or add --force", exists_hint)
        raise UsageError(msg) from None


def out_file(path: str | None) -> None:
    """An output file (``--out`` of ``plot`` and ``report``), checked before any work; None
    (the default location) is not checked."""
    from sim.files import InputError, check_output_file

    if path is None:
        return
    try:
        check_output_file(path)
    except InputError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------- results directories
def results_dir(text: str) -> Path:
    """A results directory given on the command line, checked before it is read: it exists,
    its ``metadata.json`` describes results (:func:`sim.files.read_metadata`,
    :func:`~sim.files.results_kind`), and every Parquet file in it (and in its part folders)
    has a readable footer, so a garbage or truncated file is named here rather than found as
    a traceback halfway through a report.

    Raises:
        UsageError: naming the directory (and the file) and what is wrong.
    """
    from sim.files import InputError, read_metadata, results_kind

    path = Path(text)
    try:
        results_kind(path, read_metadata(path))
    except InputError as exc:
        raise UsageError(str(exc)) from None
    files = sorted(path.glob("*.parquet"))
    for sub in ("runs", "timeseries", "incidents"):
        files += sorted((path / sub).glob("*.parquet")) if (path / sub).is_dir() else []
    if files:
        import pyarrow.parquet as pq

        for f in files:
            try:
                pq.read_metadata(f)
            except Exception as exc:  # noqa: BLE001  (pyarrow raises several kinds)
                raise UsageError(f"{path}: {f.relative_to(path)} is not a readable Parquet file"
                                 f" ({type(exc).__name__}: {str(exc)[:120]})") from None
    return path


class reading:  # lower case: used as `with check.reading(path):`
    """Context manager for reading a results directory that passed :func:`results_dir`: an
    error that means the directory is damaged or incomplete (a key missing from
    ``metadata.json``, a missing column or file) becomes a UsageError naming the directory.
    Other errors (a full disk, a bug) pass through."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, (KeyError, TypeError, IndexError, OSError)):
            return False
        if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, IsADirectoryError)):
            return False  # a full disk or a permission problem is not the directory's fault
        raise UsageError(f"{self.path}: the results directory is damaged or incomplete"
                         f" ({type(exc).__name__}: {str(exc)[:160]})") from None


# --------------------------------------------------------------------------- Dask
def connect_scheduler(address: str, timeout: float = 5.0) -> Any:
    """A Dask ``distributed.Client`` connected to ``address``, or a UsageError after at most
    ``timeout`` seconds when no scheduler answers there; called before anything is written,
    so a wrong address leaves no results directory behind."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs the 'distributed' package (pip install"
                         " 'dask[distributed]')") from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise UsageError(f"--scheduler {address[:120]!r}: no Dask scheduler answered within"
                         f" {timeout:g} s ({type(exc).__name__}: {str(exc)[:160]}); check the"
                         " address (tcp://host:port) or use --scheduler local") from None
