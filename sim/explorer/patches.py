"""Where the explorer reaches into Mesa's and Solara's internals, all in one place.

Mesa's ``SolaraViz`` offers no hook for two things this page needs, so two functions of
``mesa.visualization.solara_viz`` are replaced:

* ``make_initial_grid_layout``: SolaraViz tiles its panels in equal half-width tiles; this
  page starts with the map full width and the charts two by two (:func:`apply` takes the
  layout). Only a page with exactly that many panels is affected.
* ``force_update`` (tell every panel a new day is there): each panel, and Mesa's own step
  counter, listens to Mesa's update counter; without a batch Solara renders the page once per
  listener (nine times a day here). :func:`force_update_once` raises the counter inside the
  session's render context, as one batch, so the renders merge into one.

Both are written against Mesa 3.5.x (:data:`SUPPORTED_MESA`). :func:`apply` replaces them only
on that version; on another it warns and leaves Mesa alone (the page still works, with Mesa's
default layout and more renders per day). Nothing is replaced at import: :func:`apply` runs
when the server starts (:func:`sim.explorer.app.serve`) and when the page first renders
(:func:`sim.explorer.app.Page`, which covers ``solara run sim.explorer.app``).

:func:`SidebarAfterControls` uses Solara's private sidebar portal to place a card after
SolaraViz's controls; without it (another Solara version) the card goes into Solara's sidebar.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import mesa
import reacton.core
import solara
from mesa.visualization import solara_viz
from mesa.visualization.utils import update_counter

#: The Mesa release series (major, minor) the replacements were written for.
SUPPORTED_MESA = (3, 5)

_MARK = "_govsim"  # attribute on our replacements: tells them apart from Mesa's own functions
_warned = False


def mesa_supported(version: str | None = None) -> bool:
    """Whether ``version`` (default: the installed Mesa's) is in :data:`SUPPORTED_MESA`."""
    version = mesa.__version__ if version is None else version
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:  # not a release number
        return False
    return (major, minor) == SUPPORTED_MESA


def apply(panel_layout: Callable[[], list[dict[str, Any]]]) -> bool:
    """Replace the two SolaraViz functions (see the module docstring), once.

    Args:
        panel_layout: returns the page's initial layout, one dict per panel (``i``, ``x``,
            ``y``, ``w``, ``h``) in SolaraViz's 12-column grid.

    Returns:
        True when the replacements are in place, False when skipped (unsupported Mesa; a
        ``RuntimeWarning`` says so, once per process).
    """
    global _warned
    if not mesa_supported():
        if not _warned:
            _warned = True
            warnings.warn(
                f"govsim explorer: Mesa {mesa.__version__} is installed, but the explorer's "
                f"adjustments to SolaraViz are written for Mesa "
                f"{'.'.join(map(str, SUPPORTED_MESA))}.x; they are skipped (the page works, "
                "with SolaraViz's default panel layout and slower updates)",
                RuntimeWarning, stacklevel=2)
        return False
    if not getattr(solara_viz.make_initial_grid_layout, _MARK, False):
        original = solara_viz.make_initial_grid_layout
        n_panels = len(panel_layout())

        def make_initial_grid_layout(num_components):
            if num_components == n_panels:
                return panel_layout()
            return original(num_components)

        setattr(make_initial_grid_layout, _MARK, True)
        solara_viz.make_initial_grid_layout = make_initial_grid_layout
    if not getattr(solara_viz.force_update, _MARK, False):
        solara_viz.force_update = force_update_once
    return True


def applied() -> bool:
    """Whether :func:`apply` has replaced the functions in this process."""
    return (getattr(solara_viz.make_initial_grid_layout, _MARK, False)
            and getattr(solara_viz.force_update, _MARK, False))


# This session's render context (Solara reactive variables are per session).
_render_context = solara.reactive(None)


def use_render_context() -> None:
    """Remember the current session's render context for :func:`force_update_once`. Call it
    in the page component, like a Solara hook."""
    rc = reacton.core.get_render_context()
    solara.use_effect(lambda: _render_context.set(rc), [])


def force_update_once() -> None:
    """Mesa's ``force_update`` (raise the update counter), as one render of the session."""
    rc = _render_context.value
    if rc is None:  # outside a page (no session yet): Mesa's behaviour
        update_counter.value += 1
        return
    with rc:
        update_counter.value += 1


setattr(force_update_once, _MARK, True)


@solara.component
def SidebarAfterControls(children=[]):  # noqa: B006 - solara's convention for children
    """Like ``solara.Sidebar``, but placed after SolaraViz's Controls card (Step, Play, Reset),
    which Solara would otherwise put second (sidebar items declared at the same depth keep the
    order they were mounted in)."""
    try:
        from solara.components.applayout import sidebar_portal
    except ImportError:  # Solara changed its internals: the card goes into the sidebar anyway
        return solara.Sidebar(children=children)
    sidebar_portal.use_portal_add(children, 1 << 20)  # a high offset sorts it last
    return solara.Div(style="display: none")
