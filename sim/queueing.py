"""Capacity-limited server pools with priority queues, advanced in time by the caller.

At city scale about a million cases a year pass through the handlers, so scheduling one
Mesa event per case would be too costly.  Instead every handler owns a :class:`ServerPool`
with its own event heap.  The model submits cases as they are created and, at the end of
each simulated day, calls ``pool.advance(model.time)``; the pool then processes every
arrival and completion up to that time (completions fall at fractional times within the
day) and returns the completions in time order.

The pool is a c-server queue with priorities (M/G/c when arrivals are Poisson).  It is
entirely deterministic: service times are drawn by the caller from its own random stream,
which keeps common random numbers across scenarios.

Event-ordering rules
--------------------
1. Events are processed in increasing time order.
2. At equal times, completions are processed before arrivals, so a server freed at ``t``
   is available to a case arriving at ``t`` (that case waits zero time).  Because of
   rule 4 this order is observable only through that consequence.
3. Arrivals at equal times are processed in ``(priority, arrival_time, submission
   sequence)`` order; completions at equal times in submission order of their cases.
4. Servers are assigned only after *all* events at an instant have been processed.  Free
   servers then take waiting cases in ``(priority, arrival_time, submission sequence)``
   order: lower priority value first, ties FIFO by arrival time, then by submission order.
   Hence a high-priority case arriving at ``t`` gets a server freed at ``t`` ahead of a
   lower-priority case that was already waiting.
5. Service is non-pre-emptive.  ``set_servers`` takes effect from the pool's current
   time ``now``: increasing it lets waiting cases start at ``now`` on the next
   ``advance``; decreasing it never interrupts cases in service, it only stops new
   starts until ``busy < servers``.
6. ``advance(until)`` processes events with time ``<= until`` and dispatches at ``until``
   with the cases it knows of, so that afterwards no server is idle while a case waits.
   Arrivals with time ``> until`` stay pending.  A case may be submitted with
   ``arrival_time == now`` after an advance to ``now``; it is processed (at time ``now``)
   by the next ``advance``, competing by priority for servers still free at ``now`` but
   not displacing cases that the previous advance already started at ``now``.  This only
   matters when a completion falls exactly on an advance boundary (e.g. whole-day service
   times with arrivals stamped at the start of the day); with continuous service times it
   has probability zero.  Callers who need exact priority competition at boundary
   instants should submit such arrivals before advancing to that instant.

The module also provides the analytic M/M/c (Erlang-C) formulas used by the tests and
documentation: :func:`erlang_c`, :func:`mmc_mean_wait`, :func:`mmc_mean_busy`.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush
from typing import NamedTuple

__all__ = [
    "Completion",
    "ServerPool",
    "erlang_c",
    "mmc_mean_wait",
    "mmc_mean_busy",
]

_INF = math.inf


class Completion(NamedTuple):
    """A case that finished service: ``(incident_id, arrival_time, start_time, end_time)``."""

    incident_id: int
    arrival_time: float
    start_time: float
    end_time: float


# Heap layouts (tuples only; no per-event objects besides these and the Completion):
#   event heap, arrival:     (time, 1, priority, seq, incident_id, service_time)
#   event heap, completion:  (time, 0, 0.0,      seq, incident_id, arrival_time, start_time)
#   waiting heap:            (priority, arrival_time, seq, incident_id, service_time)
# ``seq`` (submission sequence number) is unique, so tuple comparison never goes past it.
# Kind 0 (completion) sorts before kind 1 (arrival) at equal times: rule 2.
_COMPLETION = 0
_ARRIVAL = 1


class ServerPool:
    """A c-server queue with priorities (M/G/c when arrivals are Poisson), advanced by the caller.

    See the module docstring for the event-ordering rules.

    Read-only statistics: ``now``, ``servers``, ``queue_length`` (waiting, not in service,
    arrived by ``now``), ``busy`` (in service), ``pending`` (submitted but not yet
    arrived), ``busy_time`` (integral of busy servers, server-days since ``start_time``),
    ``capacity_time`` (integral of ``servers``), ``utilisation()``.
    """

    __slots__ = (
        "name",
        "_servers",
        "_now",
        "_events",
        "_waiting",
        "_busy",
        "_seq",
        "_n_pending",
        "_busy_time",
        "_capacity_time",
        # per-period counters (reset by take_daily_stats)
        "_p_arrivals",
        "_p_starts",
        "_p_completions",
        "_p_busy_time",
        "_p_capacity_time",
        "_p_wait_sum",
    )

    def __init__(self, name: str, servers: int, *, start_time: float = 0.0) -> None:
        self.name = name
        self._servers = self._check_servers(name, servers)
        start_time = float(start_time)
        if not math.isfinite(start_time):
            raise ValueError(f"ServerPool {name!r}: start_time must be finite, got {start_time!r}")
        self._now = start_time
        self._events: list[tuple] = []
        self._waiting: list[tuple] = []
        self._busy = 0
        self._seq = 0
        self._n_pending = 0
        self._busy_time = 0.0
        self._capacity_time = 0.0
        self._p_arrivals = 0
        self._p_starts = 0
        self._p_completions = 0
        self._p_busy_time = 0.0
        self._p_capacity_time = 0.0
        self._p_wait_sum = 0.0

    @staticmethod
    def _check_servers(name: str, n: int) -> int:
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(
                f"ServerPool {name!r}: servers must be a non-negative integer, got {n!r}"
            )
        return int(n)

    def __repr__(self) -> str:
        return (
            f"ServerPool({self.name!r}, servers={self._servers}, now={self._now}, "
            f"busy={self._busy}, queue_length={len(self._waiting)}, pending={self._n_pending})"
        )

    # ------------------------------------------------------------------ read-only state
    @property
    def servers(self) -> int:
        return self._servers

    @property
    def now(self) -> float:
        return self._now

    @property
    def queue_length(self) -> int:
        """Cases waiting (not in service) that have arrived by ``now``."""
        return len(self._waiting)

    @property
    def busy(self) -> int:
        """Cases in service at ``now``."""
        return self._busy

    @property
    def pending(self) -> int:
        """Cases submitted but not yet processed as arrivals (arrival time > ``now``, or
        ``== now`` when submitted after the last advance)."""
        return self._n_pending

    @property
    def busy_time(self) -> float:
        """Integral of the number of busy servers over time since ``start_time`` (server-days)."""
        return self._busy_time

    @property
    def capacity_time(self) -> float:
        """Integral of ``servers`` over time since ``start_time`` (server-days)."""
        return self._capacity_time

    def utilisation(self) -> float:
        """``busy_time / capacity_time`` (0.0 if there has been no capacity time)."""
        return self._busy_time / self._capacity_time if self._capacity_time > 0.0 else 0.0

    def waiting_ids(self) -> list[int]:
        """Incident ids of waiting cases, in the order they would be served."""
        return [w[3] for w in sorted(self._waiting)]

    def in_service_ids(self) -> list[int]:
        """Incident ids of cases in service, in order of their (future) completion."""
        return [e[4] for e in sorted(e for e in self._events if e[1] == _COMPLETION)]

    # ------------------------------------------------------------------ mutation
    def set_servers(self, n: int) -> None:
        """Change the number of servers from ``now`` on (``n >= 0``).

        Reducing does not pre-empt cases in service; it just stops new starts until
        ``busy < servers``.  Increasing lets waiting cases start at ``now`` during the
        next :meth:`advance`.
        """
        self._servers = self._check_servers(self.name, n)

    def submit(
        self,
        incident_id: int,
        arrival_time: float,
        service_time: float,
        priority: float = 0.0,
    ) -> None:
        """Queue a case arriving at ``arrival_time`` needing ``service_time`` days of one server.

        ``arrival_time`` must be finite and ``>= now`` and ``service_time`` finite and
        ``> 0`` (else ValueError).  Lower ``priority`` value is served first; ties FIFO by
        arrival time, then submission order.
        """
        if not (self._now <= arrival_time < _INF):
            raise ValueError(
                f"ServerPool {self.name!r}: arrival_time {arrival_time!r} is before the pool's "
                f"current time now={self._now!r} (or not finite)"
            )
        if not (0.0 < service_time < _INF):
            raise ValueError(
                f"ServerPool {self.name!r}: service_time must be finite and > 0, "
                f"got {service_time!r}"
            )
        if priority != priority:  # NaN would break heap ordering
            raise ValueError(f"ServerPool {self.name!r}: priority must not be NaN")
        seq = self._seq
        self._seq = seq + 1
        heappush(self._events, (arrival_time, _ARRIVAL, priority, seq, incident_id, service_time))
        self._n_pending += 1

    def advance(self, until: float) -> list[Completion]:
        """Process every arrival and completion with time ``<= until`` in time order.

        Servers are assigned whenever one is free (after all events at an instant, see
        the module docstring).  Returns the completions in non-decreasing ``end_time``
        order.  Arrivals with time ``> until`` wait for a later advance.  ``until`` must
        be finite and ``>= now``.
        """
        now = self._now
        until = float(until)
        if not (now <= until < _INF):
            raise ValueError(
                f"ServerPool {self.name!r}: cannot advance to {until!r}; now={now!r} "
                "(until must be finite and >= now)"
            )
        events = self._events
        waiting = self._waiting
        servers = self._servers
        busy = self._busy
        out: list[Completion] = []
        append = out.append
        new = tuple.__new__  # faster than Completion(...) and yields the same NamedTuple
        cls = Completion

        busy_time = 0.0
        n_arrivals = 0
        n_starts = 0
        wait_sum = 0.0
        t = now
        # Arrivals at exactly `now` submitted after the previous advance must be processed
        # before anyone is dispatched at `now` (rule 4), so skip the initial dispatch then.
        skip_dispatch = bool(events) and events[0][0] <= now
        while True:
            if skip_dispatch:
                skip_dispatch = False
            else:
                # Dispatch at time t: all events at t have been processed.
                while busy < servers and waiting:
                    _prio, arr, seq, iid, svc = heappop(waiting)
                    heappush(events, (t + svc, _COMPLETION, 0.0, seq, iid, arr, t))
                    busy += 1
                    n_starts += 1
                    wait_sum += t - arr
            if not events:
                break
            t_next = events[0][0]
            if t_next > until:
                break
            busy_time += busy * (t_next - t)
            t = t_next
            # Process every event at time t (completions first: kind 0 < kind 1).
            while True:
                ev = heappop(events)
                if ev[1] == _COMPLETION:
                    busy -= 1
                    append(new(cls, (ev[4], ev[5], ev[6], t)))
                else:
                    heappush(waiting, (ev[2], t, ev[3], ev[4], ev[5]))
                    n_arrivals += 1
                if not events or events[0][0] != t:
                    break
        busy_time += busy * (until - t)
        capacity_time = servers * (until - now)

        self._busy = busy
        self._now = until
        self._n_pending -= n_arrivals
        self._busy_time += busy_time
        self._capacity_time += capacity_time
        self._p_arrivals += n_arrivals
        self._p_starts += n_starts
        self._p_completions += len(out)
        self._p_busy_time += busy_time
        self._p_capacity_time += capacity_time
        self._p_wait_sum += wait_sum
        return out

    def take_daily_stats(self) -> dict:
        """Return and reset the counters accumulated since the last call (or creation).

        Keys: ``arrivals``, ``starts``, ``completions`` (counts in the period),
        ``busy_time``, ``capacity_time`` (server-days in the period), ``wait_sum`` (sum of
        the waits, start - arrival, of the cases that started in the period); plus the
        end-of-period snapshot ``queue_length``, ``busy``, ``servers`` (not reset).
        """
        stats = {
            "arrivals": self._p_arrivals,
            "starts": self._p_starts,
            "completions": self._p_completions,
            "busy_time": self._p_busy_time,
            "capacity_time": self._p_capacity_time,
            "wait_sum": self._p_wait_sum,
            "queue_length": len(self._waiting),
            "busy": self._busy,
            "servers": self._servers,
        }
        self._p_arrivals = 0
        self._p_starts = 0
        self._p_completions = 0
        self._p_busy_time = 0.0
        self._p_capacity_time = 0.0
        self._p_wait_sum = 0.0
        return stats


# ---------------------------------------------------------------------- M/M/c formulas
def _check_rates(arrival_rate: float, service_rate: float) -> None:
    if not (0.0 <= arrival_rate < _INF):
        raise ValueError(f"arrival_rate must be finite and >= 0, got {arrival_rate!r}")
    if not (0.0 < service_rate < _INF):
        raise ValueError(f"service_rate must be finite and > 0, got {service_rate!r}")


def erlang_c(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Probability that an arrival to a stable M/M/c queue has to wait (Erlang C).

    Computed from the Erlang-B recursion ``B_0 = 1, B_k = a B_{k-1} / (k + a B_{k-1})``
    with offered load ``a = arrival_rate / service_rate``, then
    ``C = c B_c / (c - a (1 - B_c))``; this is numerically stable for large ``c``.
    Raises ValueError if ``rho = a / c >= 1`` (no steady state) or on invalid input.
    """
    _check_rates(arrival_rate, service_rate)
    if isinstance(servers, bool) or int(servers) != servers or servers < 1:
        raise ValueError(f"servers must be a positive integer, got {servers!r}")
    c = int(servers)
    a = arrival_rate / service_rate
    if a >= c:
        raise ValueError(
            f"M/M/c unstable: rho = {a / c!r} >= 1 "
            f"(lambda={arrival_rate}, mu={service_rate}, c={c})"
        )
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean waiting time in queue of a stable M/M/c: ``Wq = C / (c mu - lambda)``."""
    c_prob = erlang_c(arrival_rate, service_rate, servers)
    return c_prob / (int(servers) * service_rate - arrival_rate)


def mmc_mean_busy(arrival_rate: float, service_rate: float) -> float:
    """Mean number of busy servers of a stable M/M/c (offered load): ``lambda / mu``."""
    _check_rates(arrival_rate, service_rate)
    return arrival_rate / service_rate
