"""Gaussian-process emulators of the targets and the implausibility measure of history matching.

One emulator per fit target: scikit-learn's ``GaussianProcessRegressor`` on the unit cube of
the active parameters, kernel ``C * Matern(nu=2.5, one length scale per parameter) + White``
(the white term absorbs the model's own run-to-run noise), outputs normalised. Its predictive
variance includes that noise, so the implausibility of a parameter point ``x`` for target ``i``
is

    I_i(x) = |z_i - E[f_i(x)]| / sqrt(sd_i^2 + d_i^2 + Var[f_i(x)])

(``z_i`` the observation, ``sd_i`` its observation error, ``d_i`` the model discrepancy, the
last term the emulator's variance including the stochastic variance of a run's mean), and a
point is non-implausible when ``max_i I_i(x) <= cutoff`` (3 by Pukelsheim's rule: any
unimodal distribution has 95% of its mass within 3 standard deviations). Craig et al. (1997);
Vernon, Goldstein & Bower (2010); Andrianakis et al. (2015).

Diagnostics (:meth:`Emulator.diagnostics`): k-fold cross-validation of each target's GP:
R^2 of the held-out predictions, the share of standardised held-out errors within +-2
(about 0.95 for a well-calibrated emulator) and the fitted length scales and noise.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def _gp(d: int, seed: int) -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = (ConstantKernel(1.0, (1e-3, 1e3))
              * Matern(length_scale=np.full(d, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5)
              + WhiteKernel(1e-2, (1e-8, 1.0)))
    return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                    random_state=seed)


def _fit(gp: Any, X: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        gp.fit(X, y)
    return gp


class Emulator:
    """One GP per target column, fitted on the finite rows of that column."""

    def __init__(self, names: list[str], seed: int):
        self.names = list(names)
        self.seed = int(seed)
        self.models: dict[str, Any] = {}
        self.constant: dict[str, float] = {}
        self._diag: list[dict[str, Any]] = []

    def fit(self, X: np.ndarray, Y: np.ndarray) -> Emulator:
        X = np.asarray(X, dtype=float)
        for j, name in enumerate(self.names):
            y = np.asarray(Y[:, j], dtype=float)
            ok = np.isfinite(y)
            if ok.sum() < 3:
                raise ValueError(f"target {name!r}: fewer than 3 finite model outputs to emulate"
                                 " (the runs failed, or the outcome is undefined in them)")
            if np.ptp(y[ok]) == 0:
                self.constant[name] = float(y[ok][0])  # the parameters do not move it
                continue
            self.models[name] = _fit(_gp(X.shape[1], self.seed), X[ok], y[ok])
        self._diag = self._cross_validate(X, Y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (including the fitted run noise), shape (n, targets)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        mean = np.empty((len(X), len(self.names)))
        sd = np.zeros_like(mean)
        for j, name in enumerate(self.names):
            if name in self.constant:
                mean[:, j] = self.constant[name]
                continue
            m, s = self.models[name].predict(X, return_std=True)
            mean[:, j], sd[:, j] = m, s
        return mean, sd

    def implausibility(self, X: np.ndarray, observed: np.ndarray, error_sd: np.ndarray) -> np.ndarray:
        """I_i(x) per point and target, shape (n, targets)."""
        mean, sd = self.predict(X)
        return np.abs(mean - observed) / np.sqrt(error_sd ** 2 + sd ** 2)

    def diagnostics(self) -> list[dict[str, Any]]:
        return list(self._diag)

    def _cross_validate(self, X: np.ndarray, Y: np.ndarray, folds: int = 5) -> list[dict[str, Any]]:
        from sklearn.model_selection import KFold

        rows = []
        for j, name in enumerate(self.names):
            y = Y[:, j]
            ok = np.flatnonzero(np.isfinite(y))
            row: dict[str, Any] = {"target": name, "n": len(ok)}
            if name in self.constant:
                rows.append({**row, "cv_r2": np.nan, "cv_within_2sd": np.nan, "cv_rmse": 0.0,
                             "length_scales": "", "noise_sd": 0.0,
                             "note": "constant over the runs: the parameters do not move it"})
                continue
            k = min(folds, len(ok))
            pred = np.empty(len(ok))
            psd = np.empty(len(ok))
            for train, test in KFold(k, shuffle=True, random_state=self.seed).split(ok):
                gp = _gp(X.shape[1], self.seed)
                gp.set_params(n_restarts_optimizer=0)
                _fit(gp, X[ok[train]], y[ok[train]])
                pred[test], psd[test] = gp.predict(X[ok[test]], return_std=True)
            resid = y[ok] - pred
            ss = float(np.sum((y[ok] - y[ok].mean()) ** 2))
            kern = self.models[name].kernel_
            scales = np.atleast_1d(kern.k1.k2.length_scale)
            rows.append({**row,
                         "cv_r2": 1 - float(np.sum(resid ** 2)) / ss if ss > 0 else np.nan,
                         "cv_within_2sd": float(np.mean(np.abs(resid) <= 2 * psd)),
                         "cv_rmse": float(np.sqrt(np.mean(resid ** 2))),
                         "length_scales": ", ".join(f"{s:.3g}" for s in scales),
                         "noise_sd": float(np.sqrt(kern.k2.noise_level) * self.models[name]._y_train_std),
                         "note": ""})
        return rows


def max_implausibility(emulators: list[Emulator], X: np.ndarray, observed: np.ndarray,
                       error_sd: np.ndarray) -> np.ndarray:
    """The largest implausibility of each point over targets and over every wave's emulator
    (a point must pass each wave's cut to stay in the non-implausible space)."""
    out = np.zeros(len(X))
    for em in emulators:
        out = np.maximum(out, em.implausibility(X, observed, error_sd).max(axis=1))
    return out


def maximin_subset(X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` rows of ``X`` chosen greedily to spread out (each next point is the one
    farthest from those already chosen); starts from a random row."""
    if len(X) <= n:
        return np.arange(len(X))
    chosen = [int(rng.integers(len(X)))]
    dist = np.linalg.norm(X - X[chosen[0]], axis=1)
    for _ in range(n - 1):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(X - X[i], axis=1))
    return np.array(chosen)
