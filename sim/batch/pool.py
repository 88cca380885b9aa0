"""Where a batch's runs execute: a local process pool whose workers die with the batch and
report the run they are running, replaced by a fresh pool when a worker is lost; a caller's
executor or a Dask cluster (:func:`open_executor`).

Why the care (issue 12; docs/reliability.md, tests/test_faults.py):

* A pool worker is a child of the forkserver, not of the batch's process. When the batch's
  process was killed (``kill -9``), its workers waited for ever on their task queue, and kept
  the forkserver and the resource tracker alive (they exit only when no process uses them):
  about 525 MB left behind indefinitely. Workers now exit with the batch (:func:`_die_with`),
  and the forkserver and resource tracker follow by themselves.
* When one worker dies (killed, out of memory), CPython fails every unfinished run of the pool
  (``BrokenProcessPool``). Each worker records the run it is running in a small file
  (:func:`set_in_flight`), so that the batch knows which run took its worker down, and
  :meth:`LocalPool.renew` starts a fresh pool for the rest (:func:`sim.batch.runner._results`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Test hooks: a pool worker that starts a run whose id matches this regular expression kills
# itself with SIGKILL, as the out-of-memory killer would: every time (KILL_ENV), or only the
# first time for each run of the batch (KILL_ONCE_ENV).
KILL_ENV = "GOVSIM_TEST_KILL_RUN"
KILL_ONCE_ENV = "GOVSIM_TEST_KILL_RUN_ONCE"


# --------------------------------------------------------------------------- in a worker
# Set by _worker_init in each worker of a pool made by make_process_pool; None elsewhere.
_batch_pid: int | None = None  # the batch's process, which this worker must not outlive
_in_flight_fd: int | None = None  # file in which this worker records the run it is running
_flight_dir: Path | None = None  # the directory of those files, one per worker
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _worker_init(batch_pid: int | None = None, flight_dir: str | None = None) -> None:
    """Set up a pool worker once (not once per run): import the model, die with the batch's
    process, and open the file where the worker records the run it is running."""
    global _batch_pid, _in_flight_fd, _flight_dir
    import sim.model  # noqa: F401

    if batch_pid is not None:
        _batch_pid = batch_pid
        _die_with(batch_pid)
    if flight_dir is not None:
        _flight_dir = Path(flight_dir)
        _in_flight_fd = os.open(os.path.join(flight_dir, str(os.getpid())),
                                os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def set_in_flight(run_id: str) -> None:
    """Record (or with ``""`` clear) the run this pool worker is running: if the worker dies,
    the batch knows which run it lost. Two system calls, microseconds per run."""
    if _in_flight_fd is None:
        return
    os.ftruncate(_in_flight_fd, 0)
    if run_id:
        os.pwrite(_in_flight_fd, run_id.encode(), 0)


def kill_if_asked(run_id: str) -> None:
    """The test hook :data:`KILL_ENV`: kill this pool worker as the run starts."""
    if _batch_pid is None:
        return  # never in the batch's own process
    always, once = os.environ.get(KILL_ENV), os.environ.get(KILL_ONCE_ENV)
    if once and re.search(once, run_id) and _flight_dir is not None:
        flag = _flight_dir / "killed" / run_id  # kept by the pool across renewals
        if not flag.exists():
            flag.parent.mkdir(exist_ok=True)
            flag.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    if always and re.search(always, run_id):
        os.kill(os.getpid(), signal.SIGKILL)


def _die_with(batch_pid: int) -> None:
    """Make this pool worker exit when the batch's process exits, even by ``kill -9``.

    A worker is a child of the forkserver, not of the batch's process. Orphaned, it would wait
    for ever on its task queue (it holds both ends of that pipe), and keep the forkserver and
    the resource tracker alive too, since they exit only when no process uses them any more
    (issue 12: ~525 MB left behind indefinitely). Two guards: the kernel kills the worker when
    its parent, the forkserver, dies (``prctl(PR_SET_PDEATHSIG)``, Linux), and a daemon thread
    ends it when the batch's process exits (:func:`_watch`). Then the forkserver sees the end
    of its last client and exits, and the resource tracker after it.
    """
    if sys.platform.startswith("linux"):
        parent = os.getppid()
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    threading.Thread(target=_watch, args=(batch_pid,), name="govsim-batch-watchdog",
                     daemon=True).start()


def _watch(pid: int) -> None:
    """End this process when process ``pid`` exits: wait on a pidfd (Linux 5.3+, no polling,
    no confusion with a later process that reuses the pid), else check once a second."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        waiter = select.poll()
        waiter.register(fd, select.POLLIN)
        waiter.poll()  # readable once the process has exited
        os._exit(1)
    while True:
        time.sleep(1.0)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass  # exists (the pid of another user's process: reused, rare; keep running)


# --------------------------------------------------------------------------- in the batch
def make_process_pool(workers: int, *,
                      flight_dir: str | Path | None = None) -> cf.ProcessPoolExecutor:
    """A process pool whose workers import the model once, are recycled after many runs (so
    memory stays flat over thousands of runs), and exit with this process (:func:`_die_with`).

    Args:
        workers: worker processes.
        flight_dir: a directory where each worker keeps the id of the run it is running (one
            file per worker, named by its pid), so that a batch knows the runs a lost worker took
            with it.
    """
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["sim.model"])
    return cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_worker_init,
        initargs=(os.getpid(), None if flight_dir is None else str(flight_dir)),
        max_tasks_per_child=500)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "was lost"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        oom = " (also what the out-of-memory killer sends)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{oom}"
    return f"exited with status {code}"


class LocalPool:
    """A process pool started by this batch; replaced by a fresh one when a worker is lost."""

    renewable = True

    def __init__(self, workers: int):
        self.workers = workers
        self.flight_dir = Path(tempfile.mkdtemp(prefix="govsim-pool-"))
        self.executor = make_process_pool(workers, flight_dir=self.flight_dir)

    def renew(self) -> tuple[dict[str, str], set[str]]:
        """Shut the broken pool down (its remaining workers are stopped and joined) and start
        a fresh one.

        Returns:
            The runs whose own worker died (run id -> what happened to the worker), and every
            run that was running in the lost pool. After one worker dies, the pool stops the
            others with SIGTERM: their runs restart but do not count as losses.
        """
        # pid -> Process: a private attribute of CPython's pool (3.8-3.13); without it every
        # run that was running counts as lost
        procs = dict(getattr(self.executor, "_processes", None) or {})
        self.executor.shutdown(wait=True, cancel_futures=True)
        culprits: dict[str, str] = {}
        running: set[str] = set()
        for f in self.flight_dir.iterdir():
            if not f.name.isdigit():  # one file per worker, named by its pid
                continue
            try:
                pid, run_id = int(f.name), f.read_text(encoding="utf-8").strip()
                f.unlink()
            except (OSError, ValueError):
                continue
            if not run_id:
                continue
            running.add(run_id)
            code = procs[pid].exitcode if pid in procs else None
            if code == -signal.SIGTERM and procs:
                continue  # stopped by the pool after another worker died
            culprits[run_id] = f"worker process {pid} {_describe_exit(code)}"
        self.executor = make_process_pool(self.workers, flight_dir=self.flight_dir)
        return culprits, running

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.flight_dir, ignore_errors=True)


class FixedExecutor:
    """An executor this batch does not replace: None (serial), a caller's executor, or a Dask
    cluster (which itself reschedules the tasks of a lost worker)."""

    renewable = False

    def __init__(self, executor: cf.Executor | None):
        self.executor = executor


def as_executor(executor: Any) -> cf.Executor:
    """A ``concurrent.futures.Executor`` for what the caller passed: an executor itself, or a
    Dask ``distributed.Client`` as its executor (``pure=False``: every run is a new task, even
    if an equal task ran before on this client)."""
    if not isinstance(executor, cf.Executor) and hasattr(executor, "get_executor"):
        return executor.get_executor(pure=False)
    return executor


#: Seconds to wait for a Dask scheduler to answer.
CONNECT_TIMEOUT_S = 10


@contextlib.contextmanager
def open_executor(executor: Any, scheduler: str | None, workers: int | None,
              n_todo: int) -> Iterator[FixedExecutor | LocalPool]:
    """Where the batch's runs execute. Pools and clusters started here are stopped on the way
    out; a caller's executor is left running."""
    if executor is not None:
        yield FixedExecutor(as_executor(executor))
        return
    n = workers or os.cpu_count() or 1
    if scheduler:
        from distributed import Client, LocalCluster

        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        # a scheduler that does not answer fails within the timeout, not after distributed's
        # default of 30 s (the CLI checks the address before writing anything, too)
        client = Client(cluster if cluster is not None else scheduler, timeout=CONNECT_TIMEOUT_S)
        try:
            yield FixedExecutor(client.get_executor(pure=False))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif n > 1 and n_todo > 1:
        pool = LocalPool(n)
        try:
            yield pool
        finally:
            pool.close()
    else:
        yield FixedExecutor(None)
