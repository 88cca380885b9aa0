"""Synthetic city on a square lattice for the grid-governance model.

The city is a ``width`` x ``height`` lattice of square cells of side
``cell_km`` kilometres. Everything here is plain numpy: a realistic city has
tens of thousands of cells, far too many to hold as Mesa agents, and nothing
in the lattice changes during a run.

Cells are indexed row-major, ``idx = y * width + x`` with ``0 <= x < width``
and ``0 <= y < height``; every per-cell array in this module uses that order.

The module provides

* :func:`generate_population`: people per cell from a polycentric
  exponential (Clark's law) density surface plus a rural background;
* :func:`generate_risk`: a spatially correlated, mean-one lognormal
  background risk field;
* :func:`~sim.partition.partition_hierarchy` (in :mod:`sim.partition`): the
  nested, population-balanced partition into counties, townships, communities
  and grids;
* :func:`moore_neighbours`: the 8-neighbourhood of every cell;
* :class:`City` and :func:`build_city`, which tie the above together.

No function here has scenario defaults: every parameter value comes from the
caller (the scenario configuration), so that the calibration lives in one
place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import gaussian_filter

from sim.partition import check_lattice, partition_hierarchy

if TYPE_CHECKING:
    from sim.scenario import Scenario

__all__ = [
    "City",
    "build_city",
    "generate_population",
    "generate_risk",
    "moore_neighbours",
    "partition_hierarchy",
]



# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    """Read ``key`` from a mapping or an attribute of an object.

    Args:
        obj: A dict-like centre specification or an object (e.g. a dataclass
            from the configuration module) with the attribute ``key``.
        key: Field name.

    Returns:
        The field value.
    """
    if isinstance(obj, Mapping):
        return obj[key]
    return getattr(obj, key)


def _cell_centres_km(width: int, height: int, cell_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the x and y coordinates (km) of all cell centres, row-major."""
    x = (np.arange(width, dtype=np.float64) + 0.5) * cell_km
    y = (np.arange(height, dtype=np.float64) + 0.5) * cell_km
    xx, yy = np.meshgrid(x, y)  # shape (height, width): row-major flatten
    return xx.ravel(), yy.ravel()


# ---------------------------------------------------------------------------
# 1. Population
# ---------------------------------------------------------------------------


def generate_population(
    width: int,
    height: int,
    cell_km: float,
    total_population: int,
    centres: Sequence[Any],
    rural_share: float,
    noise_sigma: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the number of residents of every cell.

    The expected density is a mixture of exponential urban kernels (Clark's
    law, density proportional to ``exp(-d / radius)``, Clark 1951, J. R. Stat.
    Soc. A 114:490) and a uniform rural background. Each component is
    normalised to sum to one over the lattice and weighted by its share, so
    ``share`` is the expected fraction of the population living in that
    component. The summed per-cell weight is then multiplied by independent
    mean-one lognormal noise, ``exp(noise_sigma * z - noise_sigma**2 / 2)``,
    which keeps the expected shares while roughening the surface (the same
    multiplicative noise therefore applies to urban and rural weight in a
    cell). Finally exactly ``total_population`` people are allocated by a
    multinomial draw.

    All parameter values come from the caller (scenario configuration); this
    function has no defaults.

    Args:
        width: Lattice width in cells.
        height: Lattice height in cells.
        cell_km: Side of a cell in km.
        total_population: Number of residents (persons) to allocate, >= 0.
        centres: Urban centres, each a dict or object with fields ``x`` and
            ``y`` (position as a fraction 0..1 of the lattice width and height,
            dimensionless), ``share`` (expected fraction of the total
            population in this centre, dimensionless) and ``radius_km``
            (e-folding radius of the density decline, km, > 0).
        rural_share: Expected fraction of the population spread uniformly as
            a rural background (dimensionless). Centre shares plus
            ``rural_share`` must sum to 1.
        noise_sigma: Standard deviation of the log of the multiplicative
            per-cell noise (dimensionless, >= 0; 0 disables the noise).
        rng: Source of all randomness. Draw order: one standard normal per
            cell (noise), then one multinomial.

    Returns:
        int64 array of shape ``(width * height,)``: residents per cell,
        summing exactly to ``total_population``.

    Raises:
        ValueError: On invalid arguments, including shares not summing to 1.
    """
    check_lattice(width, height, cell_km)
    if int(total_population) != total_population or total_population < 0:
        raise ValueError(f"total_population must be a non-negative integer, got {total_population}")
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    if rural_share < 0:
        raise ValueError(f"rural_share must be >= 0, got {rural_share}")
    shares = [float(_get(c, "share")) for c in centres]
    if any(s < 0 for s in shares):
        raise ValueError(f"centre shares must be >= 0, got {shares}")
    total_share = sum(shares) + float(rural_share)
    if abs(total_share - 1.0) > 1e-6:
        raise ValueError(
            f"centre shares {shares} plus rural_share {rural_share} sum to {total_share}, not 1"
        )

    n_cells = width * height
    xs, ys = _cell_centres_km(width, height, cell_km)
    weight = np.full(n_cells, float(rural_share) / n_cells)
    for centre, share in zip(centres, shares):
        radius = float(_get(centre, "radius_km"))
        if not radius > 0:
            raise ValueError(f"centre radius_km must be > 0, got {radius}")
        cx = float(_get(centre, "x")) * width * cell_km
        cy = float(_get(centre, "y")) * height * cell_km
        d = np.hypot(xs - cx, ys - cy)
        # Subtracting the minimum distance before exponentiating avoids
        # underflow of the whole kernel for small radii; normalisation below
        # removes the constant factor.
        kernel = np.exp(-(d - d.min()) / radius)
        weight += share * kernel / kernel.sum()

    z = rng.standard_normal(n_cells)
    weight *= np.exp(noise_sigma * z - 0.5 * noise_sigma**2)

    p = weight / weight.sum()
    return rng.multinomial(int(total_population), p).astype(np.int64)


# ---------------------------------------------------------------------------
# 2. Background risk
# ---------------------------------------------------------------------------


def generate_risk(
    width: int,
    height: int,
    cell_km: float,
    sigma: float,
    correlation_km: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw a spatially correlated, mean-one lognormal background risk field.

    White noise on the lattice is smoothed with a Gaussian filter of
    standard deviation ``correlation_km / cell_km`` cells (reflecting
    boundaries), standardised to zero sample mean and unit sample variance,
    exponentiated as ``exp(sigma * z - sigma**2 / 2)`` and finally divided by
    its sample mean so that the mean is exactly 1. Because of the sample
    standardisation, the standard deviation of ``log(risk)`` equals ``sigma``
    up to rounding.

    All parameter values come from the caller (scenario configuration).

    Args:
        width: Lattice width in cells.
        height: Lattice height in cells.
        cell_km: Side of a cell in km.
        sigma: Standard deviation of log-risk (dimensionless, >= 0). 0 gives
            a uniform field of ones (and consumes no random numbers).
        correlation_km: Standard deviation of the Gaussian smoothing kernel in
            km (>= 0; 0 leaves the noise spatially independent).
        rng: Source of all randomness (one standard normal per cell).

    Returns:
        float64 array of shape ``(width * height,)`` with mean exactly 1.
    """
    check_lattice(width, height, cell_km)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if correlation_km < 0:
        raise ValueError(f"correlation_km must be >= 0, got {correlation_km}")
    n_cells = width * height
    if sigma == 0:
        return np.ones(n_cells, dtype=np.float64)

    field = rng.standard_normal((height, width))
    if correlation_km > 0:
        field = gaussian_filter(field, sigma=correlation_km / cell_km, mode="reflect")
    field = field.ravel()
    sd = field.std()
    if not sd > 0:  # only a 1-cell lattice or extreme smoothing gets here
        return np.ones(n_cells, dtype=np.float64)
    z = (field - field.mean()) / sd
    risk = np.exp(sigma * z - 0.5 * sigma**2)
    return risk / risk.mean()


# ---------------------------------------------------------------------------
# 4. Neighbourhood
# ---------------------------------------------------------------------------

# (dx, dy) of the Moore neighbours, in the column order of moore_neighbours.
MOORE_OFFSETS: tuple[tuple[int, int], ...] = (
    (-1, -1), (0, -1), (1, -1),
    (-1, 0), (1, 0),
    (-1, 1), (0, 1), (1, 1),
)


def moore_neighbours(width: int, height: int) -> np.ndarray:
    """Return the 8 Moore neighbours of every cell (no wrap-around).

    Args:
        width: Lattice width in cells.
        height: Lattice height in cells.

    Returns:
        int32 array of shape ``(width * height, 8)``; column ``j`` is the
        neighbour at offset ``MOORE_OFFSETS[j]`` (dx, dy), or -1 where that
        neighbour would fall off the lattice.
    """
    check_lattice(width, height)
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    xs, ys = xs.ravel(), ys.ravel()
    out = np.empty((width * height, 8), dtype=np.int32)
    for j, (dx, dy) in enumerate(MOORE_OFFSETS):
        nx, ny = xs + dx, ys + dy
        inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        out[:, j] = np.where(inside, ny * width + nx, -1)
    return out


# ---------------------------------------------------------------------------
# 5. City
# ---------------------------------------------------------------------------


@dataclass
class City:
    """A synthetic city: lattice, residents, risk and administrative units.

    Per-cell arrays have shape ``(n_cells,)`` in row-major order
    (``idx = y * width + x``); per-grid arrays have shape ``(n_grids,)``.

    Attributes:
        width: Lattice width in cells.
        height: Lattice height in cells.
        cell_km: Side of a cell in km.
        population: Residents per cell (persons, int64).
        urban: True where density >= the urban threshold (persons/km2).
        risk: Background risk multiplier per cell (dimensionless, mean 1).
        county: County label per cell (int32, 0..n_counties-1).
        township: Township (street/town) label per cell (int32).
        community: Community (shequ/village) label per cell (int32).
        grid: Grid label per cell (int32).
        n_counties: Number of counties.
        n_townships: Number of townships.
        n_communities: Number of communities.
        n_grids: Number of grids.
        neighbours: Moore neighbours per cell, shape ``(n_cells, 8)``, -1 off
            the lattice (see :data:`MOORE_OFFSETS`).
        grid_population: Residents per grid (persons, int64).
        grid_n_cells: Cells per grid (int64).
        grid_area_km2: Area per grid (km2).
        grid_patrol_km: Length (km) of one patrol covering the grid: a
            serpentine (boustrophedon) walk through the grid's rectangle that
            visits every cell centre once takes ``n_cells - 1`` steps of
            ``cell_km``; one more step to enter/leave the grid gives
            ``n_cells * cell_km``, which is also the length of a closed tour
            when one exists. This is a proxy for a grid worker's walking
            round, not a street-network distance.
        grid_community: Parent community of each grid (int32).
        grid_township: Parent township of each grid (int32).
        grid_county: Parent county of each grid (int32).
        grid_cell_ptr: CSR pointer, shape ``(n_grids + 1,)``, int64.
        grid_cells: Cell indices sorted by grid (ascending cell index within
            a grid), int32; grid ``g`` owns
            ``grid_cells[grid_cell_ptr[g]:grid_cell_ptr[g + 1]]``.
    """

    width: int
    height: int
    cell_km: float
    population: np.ndarray
    urban: np.ndarray
    risk: np.ndarray
    county: np.ndarray
    township: np.ndarray
    community: np.ndarray
    grid: np.ndarray
    n_counties: int
    n_townships: int
    n_communities: int
    n_grids: int
    neighbours: np.ndarray
    grid_population: np.ndarray
    grid_n_cells: np.ndarray
    grid_area_km2: np.ndarray
    grid_patrol_km: np.ndarray
    grid_community: np.ndarray
    grid_township: np.ndarray
    grid_county: np.ndarray
    grid_cell_ptr: np.ndarray
    grid_cells: np.ndarray

    @property
    def n_cells(self) -> int:
        """Number of lattice cells."""
        return self.width * self.height

    @property
    def area_km2(self) -> float:
        """Total lattice area in km2."""
        return self.n_cells * self.cell_km**2

    @property
    def total_population(self) -> int:
        """Total residents (persons)."""
        return int(self.population.sum())

    @property
    def xy(self) -> np.ndarray:
        """Cell-centre coordinates in km, shape ``(n_cells, 2)`` as (x, y)."""
        xs, ys = _cell_centres_km(self.width, self.height, self.cell_km)
        return np.column_stack([xs, ys])

    def cells_of_grid(self, g: int) -> np.ndarray:
        """Return the cell indices (int32, ascending) of grid ``g``."""
        return self.grid_cells[self.grid_cell_ptr[g] : self.grid_cell_ptr[g + 1]]

    def summary(self) -> dict[str, Any]:
        """Headline figures of the city.

        Returns:
            Dict with lattice size, area (km2), population (persons), unit
            counts, grid population min/median/max (persons), grid cell count
            min/median/max, ``urban_share`` (fraction of residents living in
            urban cells) and ``urban_area_share`` (fraction of cells urban).
        """
        pop = self.total_population
        gp = self.grid_population
        gc = self.grid_n_cells
        return {
            "width": self.width,
            "height": self.height,
            "cell_km": self.cell_km,
            "n_cells": self.n_cells,
            "area_km2": self.area_km2,
            "total_population": pop,
            "n_counties": self.n_counties,
            "n_townships": self.n_townships,
            "n_communities": self.n_communities,
            "n_grids": self.n_grids,
            "grid_population_min": int(gp.min()),
            "grid_population_median": float(np.median(gp)),
            "grid_population_max": int(gp.max()),
            "grid_cells_min": int(gc.min()),
            "grid_cells_median": float(np.median(gc)),
            "grid_cells_max": int(gc.max()),
            "urban_share": float(self.population[self.urban].sum() / pop) if pop else 0.0,
            "urban_area_share": float(self.urban.mean()),
        }


def build_city(
    *,
    width: int,
    height: int,
    cell_km: float,
    total_population: int,
    centres: Sequence[Any],
    rural_share: float,
    noise_sigma: float,
    risk_sigma: float,
    risk_correlation_km: float,
    urban_density_per_km2: float,
    area_weight: float,
    counts: Sequence[int],
    rng_population: np.random.Generator,
    rng_risk: np.random.Generator,
) -> City:
    """Generate a complete synthetic city.

    All values come from the caller (scenario configuration); separate
    generators for population and risk let either be re-drawn without
    disturbing the other. The partition is deterministic given the
    population, so changing only the grid count re-draws the grids inside
    unchanged counties, townships and communities.

    Args:
        width: Lattice width in cells.
        height: Lattice height in cells.
        cell_km: Side of a cell in km.
        total_population: Residents (persons).
        centres: Urban centres; see :func:`generate_population`.
        rural_share: Expected rural background share (dimensionless).
        noise_sigma: Log-sd of per-cell population noise (dimensionless).
        risk_sigma: Log-sd of background risk (dimensionless). The field is rescaled to a
            population-weighted mean of 1.
        risk_correlation_km: Smoothing length of the risk field (km).
        urban_density_per_km2: Density at or above which a cell is urban
            (persons/km2).
        area_weight: Partition weight of every cell as a fraction of the mean
            cell population (dimensionless, >= 0). The partition balances
            ``population + area_weight * total_population / n_cells``, so
            empty land still has weight and is absorbed into grids, and
            sparse areas get grids that are large but not unbounded.
        counts: ``[n_counties, n_townships, n_communities, n_grids]``.
        rng_population: Generator for the population draw.
        rng_risk: Generator for the risk field.

    Returns:
        The assembled :class:`City`.

    Raises:
        ValueError: If ``counts`` does not have four levels or is invalid for
            :func:`partition_hierarchy`, or on invalid generator arguments.
    """
    counts = [int(c) for c in counts]
    if len(counts) != 4:
        raise ValueError(
            f"counts must be [n_counties, n_townships, n_communities, n_grids], got {counts}"
        )
    if area_weight < 0:
        raise ValueError(f"area_weight must be >= 0, got {area_weight}")
    if urban_density_per_km2 < 0:
        raise ValueError(f"urban_density_per_km2 must be >= 0, got {urban_density_per_km2}")
    n_cells = width * height

    population = generate_population(
        width, height, cell_km, total_population, centres, rural_share, noise_sigma,
        rng_population,
    )
    risk = generate_risk(width, height, cell_km, risk_sigma, risk_correlation_km, rng_risk)
    # Rescale so the population-weighted mean is 1: then a category's base rate (per 1000
    # residents per year) is the city's per-resident rate, whatever the risk field's draw.
    if population.sum() > 0:
        risk = risk / np.average(risk, weights=population)
    urban = population / cell_km**2 >= urban_density_per_km2

    weights = population + area_weight * (total_population / n_cells)
    county, township, community, grid = partition_hierarchy(width, height, weights, counts)
    n_grids = counts[3]

    grid_cells = np.argsort(grid, kind="stable").astype(np.int32)
    grid_n_cells = np.bincount(grid, minlength=n_grids).astype(np.int64)
    grid_cell_ptr = np.zeros(n_grids + 1, dtype=np.int64)
    np.cumsum(grid_n_cells, out=grid_cell_ptr[1:])
    first_cell = grid_cells[grid_cell_ptr[:-1]]

    return City(
        width=width,
        height=height,
        cell_km=float(cell_km),
        population=population,
        urban=urban,
        risk=risk,
        county=county,
        township=township,
        community=community,
        grid=grid,
        n_counties=counts[0],
        n_townships=counts[1],
        n_communities=counts[2],
        n_grids=n_grids,
        neighbours=moore_neighbours(width, height),
        grid_population=np.bincount(grid, weights=population, minlength=n_grids)
        .round()
        .astype(np.int64),
        grid_n_cells=grid_n_cells,
        grid_area_km2=grid_n_cells * float(cell_km) ** 2,
        grid_patrol_km=grid_n_cells * float(cell_km),
        grid_community=community[first_cell].astype(np.int32),
        grid_township=township[first_cell].astype(np.int32),
        grid_county=county[first_cell].astype(np.int32),
        grid_cell_ptr=grid_cell_ptr,
        grid_cells=grid_cells,
    )


def city_from_scenario(cfg: Scenario, rng_population: np.random.Generator,
                       rng_risk: np.random.Generator) -> City:
    """The city a scenario describes (``city``, ``admin`` and ``grids`` sections), drawn from
    the model's ``city.population`` and ``city.risk`` streams."""
    c = cfg.city
    return build_city(
        width=c.width, height=c.height, cell_km=c.cell_km, total_population=c.population,
        centres=list(c.centres), rural_share=c.rural_share, noise_sigma=c.noise_sigma,
        risk_sigma=c.risk_sigma, risk_correlation_km=c.risk_correlation_km,
        urban_density_per_km2=c.urban_density_per_km2, area_weight=cfg.grids.area_weight,
        counts=[cfg.admin.counties, cfg.admin.townships, cfg.admin.communities, cfg.grids.count],
        rng_population=rng_population, rng_risk=rng_risk,
    )
