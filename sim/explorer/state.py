"""What the explorer's controls hold and the model they build.

* :class:`Settings` is what the sidebar holds: scenario file, seed, the levers changed from the
  file, and the scenario to compare against. It is frozen: a change makes new settings, and new
  settings make a new model (same seed unless the seed changed).
* :class:`ExplorerModel` (a Mesa model, so SolaraViz can drive it) holds one :class:`Run` per
  scenario: one, or two in compare mode. Both runs use the same seed (common random numbers) and
  are stepped together, so they are always on the same day.
* The session state: Solara reactive variables (one value per browser session) for the settings,
  the map's display switches and the selected grid, and :func:`apply_settings`, which rebuilds
  the model from new settings.

Nothing here draws anything; :mod:`sim.explorer.components` lays these out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mesa
import numpy as np
import solara

from sim.codes import CHANNELS
from sim.model import GovernanceModel
from sim.paths import SCENARIO_DIR
from sim.safety import expected_share_safe
from sim.scenario import ScenarioError, load_scenario

#: Environment variable through which ``govsim explore SCENARIO`` names the scenario to open.
SCENARIO_ENV = "GOVSIM_EXPLORE_SCENARIO"
#: ``Settings.compare`` value meaning "scenario A's file without the lever changes".
BASELINE = "@file"
#: ``Settings.compare`` value meaning "compare mode off".
COMPARE_OFF = ""

#: How the sidebar and the channel chart name the reporting channels.
CHANNEL_LABELS = {
    "hotline": "Hotline (12345)",
    "snap_report": "Phone channel (snap & report)",
    "grid_patrol": "Grid worker patrols",
    "police_patrol": "Police patrols",
    "joint_screening": "Joint screening (needs fusion)",
    "drone": "Drone overflights",
    "deliberation": "Residents' deliberation meetings",
}


# --------------------------------------------------------------------------- levers
@dataclass(frozen=True)
class Lever:
    """One control in the sidebar that overrides a scenario value.

    Attributes:
        key: dotted scenario key (as in ``govsim run --set key=value``).
        label: the control's label.
        kind: ``"int"`` (a number field) or ``"bool"`` (a checkbox).
    """

    key: str
    label: str
    kind: str


#: The levers of the issue: grid count, patrol density, channels, fusion and paperwork.
LEVERS: tuple[Lever, ...] = (
    Lever("grids.count", "Grid count", "int"),
    Lever("police.officers", "Police officers (patrol density)", "int"),
    *(Lever(f"channels.{ch}.enabled", CHANNEL_LABELS.get(ch, ch), "bool") for ch in CHANNELS),
    Lever("fusion.enabled", "Police-grid fusion", "bool"),
    Lever("paperwork.forms", "Forms per grid worker", "int"),
)
LEVER_KEYS = tuple(lv.key for lv in LEVERS)


def scenario_names(extra: str | None = None) -> list[str]:
    """The scenario files in ``scenarios/`` (names without ``.yaml``), plus ``extra`` (a file
    given on the command line that lives elsewhere)."""
    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    if extra and extra not in names:
        names.append(extra)
    return names


def scenario_label(ref: str) -> str:
    """Short name of a scenario reference (a name under ``scenarios/`` or a path)."""
    p = Path(ref)
    return p.stem if p.suffix in (".yaml", ".yml") else ref


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """What the controls hold.

    Attributes:
        scenario: scenario A (a name under ``scenarios/`` or a path).
        seed: the root seed of every run (the same for A and B).
        levers: the lever values changed from A's file, as sorted ``(key, value)`` pairs.
        compare: scenario B: :data:`COMPARE_OFF`, :data:`BASELINE` (A's file without the
            lever changes) or another scenario reference.
    """

    scenario: str = "default"
    seed: int = 20240101
    levers: tuple[tuple[str, Any], ...] = ()
    compare: str = COMPARE_OFF

    @classmethod
    def for_scenario(cls, scenario: str, seed: int | None = None,
                     compare: str = COMPARE_OFF) -> Settings:
        """Settings for a scenario file as it is (seed: the given one or the file's)."""
        if seed is None:
            seed = int(load_scenario(scenario).seed)
        return cls(scenario=scenario, seed=int(seed), compare=compare)

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.levers)

    def with_lever(self, key: str, value: Any) -> Settings:
        """These settings with one lever set (dropped again when it equals the file's value)."""
        if key not in LEVER_KEYS:
            raise KeyError(f"unknown lever {key!r}; levers are {', '.join(LEVER_KEYS)}")
        file_value = load_scenario(self.scenario).get(key)
        lv = dict(self.levers)
        if value == file_value:
            lv.pop(key, None)
        else:
            lv[key] = value
        return replace(self, levers=tuple(sorted(lv.items())))

    def with_scenario(self, scenario: str) -> Settings:
        """Another scenario file: levers go back to that file's values; seed and compare stay."""
        return replace(self, scenario=scenario, levers=())

    def runs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(label, scenario reference, overrides)`` for each run: A, and B in compare mode."""
        a_name = scenario_label(self.scenario)
        a_label = a_name + (" + levers" if self.levers else "")
        out = [(a_label, self.scenario, self.overrides)]
        if self.compare == BASELINE:
            out.append((f"{a_name} (file)", self.scenario, {}))
        elif self.compare:
            out.append((scenario_label(self.compare), self.compare, {}))
        if len(out) == 2 and out[0][0] == out[1][0]:
            out = [(f"A: {out[0][0]}", *out[0][1:]), (f"B: {out[1][0]}", *out[1][1:])]
        return out


def lever_values(settings: Settings) -> dict[str, Any]:
    """The value of every lever for scenario A: the file's, or the changed one."""
    cfg = load_scenario(settings.scenario, settings.overrides or None)
    return {key: cfg.get(key) for key in LEVER_KEYS}


def lever_bounds(settings: Settings) -> dict[str, tuple[int, int]]:
    """Allowed range of the whole-number levers (grids must nest in communities and fit in
    the lattice)."""
    cfg = load_scenario(settings.scenario)
    return {
        "grids.count": (cfg.admin.communities, cfg.city.width * cfg.city.height),
        "police.officers": (0, 1_000_000),
        "paperwork.forms": (0, 10_000),
    }


def initial_settings() -> Settings:
    """Start-up settings: the scenario given to ``govsim explore`` (via the environment) or
    ``default``, with the file's seed."""
    scenario = os.environ.get(SCENARIO_ENV) or "default"
    try:
        return Settings.for_scenario(scenario)
    except (ScenarioError, FileNotFoundError):
        return Settings.for_scenario("default")


# --------------------------------------------------------------------------- the model
class Run:
    """One simulated city in the explorer, with what the page needs beyond Mesa's
    DataCollector: the median time to resolution of the last 7 days (hours) and the share of
    all residents who would answer "safe" (the quantity the survey estimates).

    Args:
        label: how the page names this run (``default``, ``default + levers``, ...).
        model: the model, not yet stepped.
    """

    def __init__(self, label: str, model: GovernanceModel):
        self.label = label
        self.model = model
        self.ttr7_h: list[float] = []
        self.expected_safe: list[float] = []
        self.step_seconds: list[float] = []

    def step(self) -> None:
        t0 = time.perf_counter()
        self.model.step()
        self._record()
        self.step_seconds.append(time.perf_counter() - t0)

    def _record(self) -> None:
        m = self.model
        log = m.incidents
        n = log.n
        d = m.day
        tr = log.t_resolved[:n]
        with np.errstate(invalid="ignore"):  # unresolved incidents have t_resolved = NaN
            sel = (tr >= d - 6) & (tr < d + 1)
        dt = (tr[sel] - log.t_reported[:n][sel]) * 24.0
        self.ttr7_h.append(float(np.median(dt)) if len(dt) else float("nan"))
        # the survey's answer model (threshold with noise), averaged over all residents
        self.expected_safe.append(expected_share_safe(m.residents.safety, m.config.safety))


class ExplorerModel(mesa.Model):
    """The model behind the page: one run, or two in compare mode, stepped in lockstep.

    Args:
        settings: what the controls hold. None takes the current session's settings (this is
            how SolaraViz's Reset button, which calls the class without arguments, rebuilds the
            model from the controls).
    """

    def __init__(self, settings: Settings | None = None):
        if settings is None:
            settings = current_settings.value
        super().__init__(rng=int(settings.seed))
        self.settings = settings
        self.runs: list[Run] = [
            Run(label, GovernanceModel(ref, rng=int(settings.seed), **overrides))
            for label, ref, overrides in settings.runs()
        ]

    def step(self) -> None:
        """One day in every run."""
        for run in self.runs:
            run.step()

    @property
    def days(self) -> int:
        """Days simulated so far (the same in every run)."""
        return self.runs[0].model.steps

    @property
    def compare(self) -> bool:
        return len(self.runs) > 1

    @property
    def datacollector(self):
        """Run A's DataCollector, so Mesa's own plot components work on this model too."""
        return self.runs[0].model.datacollector


# --------------------------------------------------------------------------- session state
# Solara reactive variables hold one value per browser session (per kernel).
current_settings: solara.Reactive[Settings] = solara.reactive(Settings())
#: The map's coloured layer: a key of :data:`sim.explorer.mapdata.LAYERS`.
map_layer = solara.reactive("density")
show_incidents = solara.reactive(True)
show_staff = solara.reactive(True)
show_boundaries = solara.reactive(True)
#: (run index, grid) clicked on the map, or None.
selected_grid: solara.Reactive[tuple[int, int] | None] = solara.reactive(None)
settings_error = solara.reactive("")


def apply_settings(model_r: solara.Reactive, new: Settings) -> bool:
    """Rebuild the model from new settings (same seed unless the seed changed). On a bad
    value the old model stays and the error is shown."""
    try:
        m = ExplorerModel(new)
    except (ScenarioError, ValueError, FileNotFoundError) as exc:
        settings_error.set(str(exc))
        return False
    settings_error.set("")
    current_settings.set(new)
    selected_grid.set(None)
    model_r.set(m)  # every panel gets the new model: no need for Mesa's force_update here
    return True
