"""The calibration's results as ``rich`` tables for the terminal and notebooks: the fit table
(each target against the ensemble) and the parameters' identifiability."""

from __future__ import annotations

from typing import Any


def value_text(value: float, kind: str, outcome: str, per: str | None = None) -> str:
    """A target's value for people: relative changes as signed %, shares as % (differences of
    shares in points), counts per resident-year and other values to three digits."""
    import math

    import sim.outcomes as registry

    if value is None or not math.isfinite(value):
        return "–"
    if kind == "relative_change":
        return f"{value:+.1%}"
    if registry.is_share(outcome) and per is None:
        return f"{100 * value:+.1f} pts" if kind == "difference" else f"{100 * value:.1f}%"
    return f"{value:+.3g}" if kind == "difference" else f"{value:.3g}"


def fit_table(fit: Any) -> Any:
    """The fit table as a rich Table: each target, observed, the ensemble's mean and 90%
    interval, and whether it is within tolerance."""
    from rich.table import Table

    t = Table(title="Fit: targets against the calibrated ensemble (90% interval over members"
                    " and replications)")
    for col in ("target", "role", "observed ± sd", "model mean [90%]", "z", "within"):
        t.add_column(col, justify="left" if col in ("target", "role") else "right")
    for r in fit.itertuples():
        per = getattr(r, "per", None)

        def f(v: float, r: Any = r, per: Any = per) -> str:
            return value_text(v, r.kind, r.outcome, per)

        sd = value_text(r.sd, "level", r.outcome, per).lstrip("+")
        if r.kind == "relative_change":
            sd = f"{r.sd:.1%}"
        t.add_row(r.target, r.role, f"{f(r.observed)} ± {sd}",
                  f"{f(r.model_mean)} [{f(r.model_q05)}, {f(r.model_q95)}]", f"{r.z:+.1f}",
                  "[green]yes[/green]" if r.within else "[red]no[/red]")
    return t


def identifiability_table(ident: Any) -> Any:
    from rich.table import Table

    t = Table(title="Parameters: prior range and posterior (5%, median, 95%)")
    for col in ("parameter", "prior", "posterior", "width / prior", "identified"):
        t.add_column(col, justify="left" if col == "parameter" else "right")
    for r in ident.itertuples():
        t.add_row(r.parameter, f"[{r.low:.3g}, {r.high:.3g}]{' log' if r.scale == 'log' else ''}",
                  f"{r.posterior_q05:.3g} / {r.posterior_median:.3g} / {r.posterior_q95:.3g}",
                  f"{r.width_ratio:.2f}",
                  "[green]yes[/green]" if r.identified else
                  ("[dim]inert[/dim]" if not r.active else "[yellow]no[/yellow]"))
    return t
