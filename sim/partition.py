"""Grids: the nested, population-balanced partition of the lattice (DESIGN.md section 2).

:func:`partition_hierarchy` cuts the lattice into counties, townships, communities and grids,
each level nested in the one above, by recursive coordinate bisection: every unit is an
axis-aligned rectangle (hence contiguous), units of a level hold about equal weight
(population, blended with area by ``grids.area_weight``), and there are exactly the requested
number of units at each level, so changing ``grids.count`` re-draws the map as the reform did.

Cells are indexed row-major, ``idx = y * width + x`` (as in :mod:`sim.city`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

# Relative tolerance under which two bisection cuts count as equally good.
# Weights go through a summed-area table, so cuts that are exactly tied in
# exact arithmetic can differ by rounding noise of order 1e-15 relative.
_TIE_RTOL = 1e-9


def check_lattice(width: int, height: int, cell_km: float | None = None) -> None:
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise ValueError(f"width and height must be positive integers, got {width} x {height}")
    if cell_km is not None and not (np.isfinite(cell_km) and cell_km > 0):
        raise ValueError(f"cell_km must be a positive finite number, got {cell_km}")



Rect = tuple[int, int, int, int]  # (x0, x1, y0, y1), half-open


class _SummedArea:
    """Summed-area table giving O(1) rectangle sums and O(side) marginals."""

    def __init__(self, w2d: np.ndarray) -> None:
        h, w = w2d.shape
        table = np.zeros((h + 1, w + 1), dtype=np.float64)
        table[1:, 1:] = w2d.cumsum(axis=0).cumsum(axis=1)
        self.t = table

    def total(self, r: Rect) -> float:
        x0, x1, y0, y1 = r
        t = self.t
        return float(t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0])

    def cum_x(self, r: Rect) -> np.ndarray:
        """Weight of columns x0..x0+c-1 of ``r`` for c = 0..x1-x0."""
        x0, x1, y0, y1 = r
        t = self.t
        band = t[y1, x0 : x1 + 1] - t[y0, x0 : x1 + 1]
        return band - band[0]

    def cum_y(self, r: Rect) -> np.ndarray:
        """Weight of rows y0..y0+c-1 of ``r`` for c = 0..y1-y0."""
        x0, x1, y0, y1 = r
        t = self.t
        band = t[y0 : y1 + 1, x1] - t[y0 : y1 + 1, x0]
        return band - band[0]


def _best_cut(cum: np.ndarray, cells_per_line: int, k: int) -> tuple[int, int]:
    """Choose where to cut a rectangle and how many units each side gets.

    Args:
        cum: Cumulative weight along the cut axis, ``cum[c]`` = weight of the
            first ``c`` lines (length = side + 1).
        cells_per_line: Cells in one line across the cut axis.
        k: Units to create in the rectangle (>= 2, <= number of cells).

    Returns:
        ``(c, k1)``: the first part is the first ``c`` lines and gets ``k1``
        units.
    """
    side = cum.size - 1
    c = np.arange(1, side)
    nl = c * cells_per_line
    nr = (side - c) * cells_per_line
    total = cum[-1]
    if total > 0:
        wl = cum[1:side]
        wr = total - wl
        frac = wl / total
    else:
        # Weightless land: balance cell counts instead.
        wl = nl.astype(np.float64)
        wr = nr.astype(np.float64)
        frac = wl / (wl + wr)
    k1 = np.floor(k * frac + 0.5).astype(np.int64)
    k1 = np.clip(k1, np.maximum(1, k - nr), np.minimum(k - 1, nl))
    k2 = k - k1
    obj = np.maximum(wl / k1, wr / k2)
    best = obj.min()
    tied = obj <= best + _TIE_RTOL * abs(best)
    # Among (near-)equally balanced cuts prefer the one splitting the unit
    # count most evenly: on a flat field every cut ties, and taking the first
    # would peel off one-line strips and recurse k deep, whereas halving k
    # gives compact near-square units and a log(k) recursion.
    imbalance = np.where(tied, np.abs(2 * k1 - k), np.iinfo(np.int64).max)
    i = int(np.argmin(imbalance))  # first index among ties = smallest cut
    return int(c[i]), int(k1[i])


def _bisect(sat: _SummedArea, rect: Rect, k: int, out: list[Rect]) -> None:
    """Split ``rect`` into ``k`` rectangles, appended to ``out`` depth first.

    The first (left or top) part is emitted before the second, so the label
    order follows the recursion. An explicit stack replaces recursion so
    that degenerate inputs cannot exceed Python's recursion limit.
    """
    stack: list[tuple[Rect, int]] = [(rect, k)]
    while stack:
        r, kk = stack.pop()
        if kk == 1:
            out.append(r)
            continue
        x0, x1, y0, y1 = r
        w, h = x1 - x0, y1 - y0
        if w >= h:  # cut across the longer side (ties: vertical cut)
            c, k1 = _best_cut(sat.cum_x(r), h, kk)
            first, second = (x0, x0 + c, y0, y1), (x0 + c, x1, y0, y1)
        else:
            c, k1 = _best_cut(sat.cum_y(r), w, kk)
            first, second = (x0, x1, y0, y0 + c), (x0, x1, y0 + c, y1)
        # LIFO: push the second part first so the first is processed first.
        stack.append((second, kk - k1))
        stack.append((first, k1))


def _allot(quota_weights: np.ndarray, caps: np.ndarray, target: int) -> np.ndarray:
    """Largest-remainder apportionment of ``target`` units with bounds.

    Each parent gets between 1 and ``caps[i]`` units, as close as possible to
    its proportional quota.

    Args:
        quota_weights: Non-negative weight of each parent.
        caps: Maximum units per parent (its number of cells).
        target: Total units to allot; ``len(caps) <= target <= caps.sum()``.

    Returns:
        int64 array of units per parent summing to ``target``.
    """
    total = quota_weights.sum()
    if total > 0:
        quota = target * quota_weights / total
    else:
        quota = target * caps / caps.sum()
    alloc = np.clip(np.floor(quota).astype(np.int64), 1, caps)
    diff = target - int(alloc.sum())
    # Each pass moves at most one unit per parent; passes repeat only when
    # bounds bind, which is rare, so the loop is short in practice.
    while diff != 0:
        remainder = quota - alloc
        if diff > 0:
            eligible = np.flatnonzero(alloc < caps)
            order = eligible[np.argsort(-remainder[eligible], kind="stable")]
            take = order[:diff]
            alloc[take] += 1
        else:
            eligible = np.flatnonzero(alloc > 1)
            order = eligible[np.argsort(remainder[eligible], kind="stable")]
            take = order[:-diff]
            alloc[take] -= 1
        if take.size == 0:  # pragma: no cover - excluded by caller's checks
            raise RuntimeError("apportionment is infeasible")
        diff = target - int(alloc.sum())
    return alloc


def partition_hierarchy(
    width: int,
    height: int,
    weights: np.ndarray,
    counts: Sequence[int],
) -> list[np.ndarray]:
    """Nested, weight-balanced partition of the lattice into rectangles.

    Level 0 splits the whole lattice into ``counts[0]`` units; each deeper
    level splits every unit of the level above into a number of sub-units
    apportioned to the parents by largest remainder on their weight (at
    least 1 and at most the parent's cell count each). A rectangle is split
    into ``k`` units by recursive coordinate bisection: it is cut across its
    longer side; a cut leaving weight ``wl`` and ``nl`` cells on the first
    side allots it ``k1 = clip(round(k * wl / (wl + wr)), max(1, k - nr),
    min(k - 1, nl))`` units, and the cut minimising the mean weight of the
    heavier side's units, ``max(wl / k1, wr / k2)``, is taken. Ties (within
    a relative 1e-9) go to the cut splitting ``k`` most evenly, then to the
    smallest cut index. Every unit is a non-empty axis-aligned rectangle and
    hence 4-connected; the partition is deterministic.

    Labels are numbered in the order the recursion emits rectangles (depth
    first, left/top part first, parents in label order), so children of a
    parent have consecutive labels.

    Args:
        width: Lattice width in cells.
        height: Lattice height in cells.
        weights: Non-negative per-cell weight, shape ``(width * height,)``,
            row-major (in the model: residents plus an area term, persons).
            Zero weight is allowed; all-zero regions are balanced by cell
            count.
        counts: Units per level, top-down (e.g. counties, townships,
            communities, grids), each >= 1, non-decreasing, and the last
            at most ``width * height``.

    Returns:
        One int32 label array of shape ``(width * height,)`` per level, with
        labels ``0 .. counts[L] - 1``, all used.

    Raises:
        ValueError: On a count < 1, decreasing counts, ``counts[-1]`` larger
            than the number of cells, or invalid weights.
    """
    check_lattice(width, height)
    n_cells = width * height
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_cells,):
        raise ValueError(f"weights must have shape ({n_cells},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    counts = [int(c) for c in counts]
    if not counts:
        raise ValueError("counts must name at least one level")
    if any(c < 1 for c in counts):
        raise ValueError(f"every count must be >= 1, got {counts}")
    if any(b < a for a, b in itertools.pairwise(counts)):
        raise ValueError(f"counts must be non-decreasing top-down, got {counts}")
    if counts[-1] > n_cells:
        raise ValueError(
            f"cannot make {counts[-1]} units from {n_cells} cells (counts={counts})"
        )

    sat = _SummedArea(w.reshape(height, width))
    rects: list[Rect] = [(0, width, 0, height)]
    labels: list[np.ndarray] = []
    for count in counts:
        parent_w = np.array([sat.total(r) for r in rects])
        caps = np.array([(r[1] - r[0]) * (r[3] - r[2]) for r in rects], dtype=np.int64)
        alloc = _allot(parent_w, caps, count)
        children: list[Rect] = []
        for r, k in zip(rects, alloc):
            _bisect(sat, r, int(k), children)
        lab = np.empty((height, width), dtype=np.int32)
        for i, (x0, x1, y0, y1) in enumerate(children):
            lab[y0:y1, x0:x1] = i
        labels.append(lab.ravel())
        rects = children
    return labels
