"""The interactive explorer: the city on a map, live charts, levers and compare mode, in the
browser, built on Mesa's ``SolaraViz``.

Start it with ``govsim explore [SCENARIO] [--host 127.0.0.1] [--port 8765]`` (which calls
:func:`serve`), or with ``solara run sim.explorer.app``. The page is Mesa's SolaraViz: its sidebar
has Mesa's Step / Play / Reset buttons and the play speed, plus this app's card of scenario,
seed, levers and compare mode; the main area has the panels of
:mod:`sim.explorer.components` (day counter and headline outcomes, the map, the charts and the
difference B - A), which can be dragged and resized.

Changing a control rebuilds the model with the same seed; Mesa's Reset rebuilds it from the
controls too. In compare mode a second scenario runs in lockstep with the same seed.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import solara
from mesa.visualization import SolaraViz

from sim.explorer import patches
from sim.explorer.components import PANELS, ScenarioPanel, panel_layout
from sim.explorer.state import (
    SCENARIO_ENV,
    ExplorerModel,
    Settings,
    current_settings,
    initial_settings,
)

TITLE = "govsim explorer: grid governance"

CSS = """
.govsim-controls .v-input--checkbox { margin-top: 0; padding-top: 0; }
.govsim-controls .v-input--checkbox .v-messages { display: none; }
.govsim-controls .v-input { font-size: 14px; }
"""


def apply_patches() -> bool:
    """This page's adjustments to Mesa's SolaraViz (:mod:`sim.explorer.patches`): applied
    when the server starts and when the page first renders, never at import."""
    return patches.apply(panel_layout)


def _session_model() -> ExplorerModel:
    """The model a new browser session starts with: the scenario ``govsim explore`` was given
    (the session's settings are still the module's defaults, made at import, before
    :func:`serve` knew the scenario), or what this session already chose."""
    settings = current_settings.value
    if settings == Settings():
        start = initial_settings()
        if start != settings:
            current_settings.set(start)
            settings = start
    return ExplorerModel(settings)


@solara.component
def Page():
    """One browser session: its own model and controls."""
    solara.use_memo(apply_patches, [])
    initial = solara.use_memo(_session_model, [])
    model = solara.use_reactive(initial)
    patches.use_render_context()
    solara.Title("govsim explorer")
    solara.Style(CSS)
    SolaraViz(model, components=[c for c, _ in PANELS], name=TITLE, play_interval=150)
    patches.SidebarAfterControls(children=[ScenarioPanel(model)])


page = Page


# --------------------------------------------------------------------------- the server
def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_environment() -> list[str]:
    """Problems that would leave the page blank or broken, as messages (empty: none)."""
    from importlib.metadata import PackageNotFoundError, version

    problems = []
    try:
        if int(version("ipyvuetify").split(".")[0]) >= 3:
            problems.append(
                "ipyvuetify 3 (Vue 3) is installed: SolaraViz's draggable panel grid needs Vue 2; "
                "install 'ipyvuetify<2'"
            )
    except (PackageNotFoundError, ValueError):  # pragma: no cover - not installed at all
        problems.append("ipyvuetify is not installed (install mesa[rec])")
    return problems


def serve(scenario: str | None, host: str = "127.0.0.1", port: int = 8765,
          open_browser: bool = False) -> int:
    """Start the explorer's web server and block until it is stopped (Ctrl+C or SIGTERM).

    Args:
        scenario: the scenario to open (a name under ``scenarios/`` or a path); None: default.
        host: address to bind; localhost unless told otherwise.
        port: TCP port; 0 picks a free one.
        open_browser: open the page in the default browser once the server is up.

    Returns:
        0 when the server stopped normally, 2 for a bad scenario, 1 when the server failed.
    """
    import sim.explorer.assets as app_assets
    from sim.scenario import ScenarioError, load_scenario

    if scenario:
        try:
            load_scenario(scenario)
        except ScenarioError as exc:
            print(f"govsim explore: {exc}", file=sys.stderr)
            return 2
        path = Path(scenario)
        if path.suffix in (".yaml", ".yml") and path.exists():
            scenario = str(path.resolve())
    for problem in check_environment():
        print(f"govsim explore: warning: {problem}", file=sys.stderr)
    problems = app_assets.ensure(log=lambda msg: print(f"govsim explore: {msg}", flush=True))
    for problem in problems:
        print(f"govsim explore: warning: browser files missing ({problem}); the page needs "
              "network access to a CDN until `python -m sim.explorer.assets` succeeds",
              file=sys.stderr)
    os.environ[SCENARIO_ENV] = scenario or ""
    apply_patches()
    # no usage statistics sent from a policy office's machine
    os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")
    if port == 0:
        port = _free_port(host)
    try:
        with socket.socket() as probe:
            probe.bind((host, port))
    except OSError as exc:
        print(f"govsim explore: cannot listen on {host}:{port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    url = f"http://{host}:{port}"
    print(f"govsim explore: {scenario or 'default'} at {url}  (Ctrl+C stops the server)",
          flush=True)

    import solara.server.settings as solara_settings
    from solara.__main__ import cli

    solara_settings.telemetry.mixpanel_enable = False
    args = ["run", "sim.explorer.app", "--host", host, "--port", str(port), "--production",
            "--no-check-version", "--open" if open_browser else "--no-open",
            "--theme-loader", "plain"]
    try:
        cli.main(args=args, prog_name="solara", standalone_mode=False)
    except KeyboardInterrupt:
        return 0
    except SystemExit as exc:  # uvicorn exits non-zero when it cannot start
        return 0 if exc.code in (0, None) else 1
    except Exception as exc:  # noqa: BLE001 - report any server failure as exit 1
        print(f"govsim explore: server failed: {exc}", file=sys.stderr)
        return 1
    return 0
