"""Names and integer codes shared by every part of the model.

Incidents are stored column-wise as small integers (:mod:`sim.incidents`); these ``IntEnum``s
give those integers names, so code reads ``state == State.RESOLVED`` rather than
``state == 3``. An ``IntEnum`` member is an ``int``, so it indexes and compares with numpy
arrays at no cost. The tuples of names are what scenario files and result tables use.

This module imports nothing from the package (and nothing heavy), so any layer may use it.
"""

from __future__ import annotations

from enum import IntEnum

#: Incident categories, in code order (``incidents.<category>`` in a scenario file).
CATEGORIES: tuple[str, ...] = (
    "public_safety",
    "dispute",
    "infrastructure",
    "environment",
    "hazard",
    "welfare",
)
#: Reporting channels, in code order (``channels.<channel>`` in a scenario file).
CHANNELS: tuple[str, ...] = (
    "hotline",
    "snap_report",
    "grid_patrol",
    "police_patrol",
    "joint_screening",
    "drone",
    "deliberation",  # residents' deliberation meetings; appended last so older codes keep their values
)
#: Handling routes in code order (``incidents.<category>.route``).
HANDLERS: tuple[str, ...] = (
    "community", "township", "county", "city", "police", "mediation", "social_work",
)
#: Handler pools in the order they advance each day: an escalation always goes to a pool not
#: yet advanced today (mediation, social work and community -> township -> county -> city;
#: police -> county).
HANDLER_POOLS: tuple[str, ...] = (
    "mediation", "social_work", "community", "police", "township", "county", "city",
)


class State(IntEnum):
    """Life-cycle state of an incident. The first three are open."""

    UNDISCOVERED = 0  # occurred, nobody has reported it yet
    KNOWN = 1         # reported, in triage, queued or in hand
    PAPER_CLOSED = 2  # officially closed while the problem persists
    RESOLVED = 3      # truly fixed (closed and resolved)
    FAILED = 4        # abandoned after its attempts ran out
    LAPSED = 5        # never reported within its window (the dark figure)


STATE_NAMES: tuple[str, ...] = tuple(s.name.lower() for s in State)
OPEN_STATES: tuple[State, ...] = (State.UNDISCOVERED, State.KNOWN, State.PAPER_CLOSED)

Category = IntEnum("Category", {c.upper(): i for i, c in enumerate(CATEGORIES)})
Category.__doc__ = "Incident category codes (see :data:`CATEGORIES`)."
Channel = IntEnum("Channel", {c.upper(): i for i, c in enumerate(CHANNELS)})
Channel.__doc__ = "Reporting channel codes (see :data:`CHANNELS`)."
#: Handler codes: the routes of :data:`HANDLERS`, then on-the-spot fixing by the grid worker.
HANDLER_NAMES: tuple[str, ...] = (*HANDLERS, "on_spot")
Handler = IntEnum("Handler", {h.upper(): i for i, h in enumerate(HANDLER_NAMES)})
Handler.__doc__ = "Handler codes (see :data:`HANDLER_NAMES`)."


class Origin(IntEnum):
    """How an incident arose."""

    BACKGROUND = 0
    NEAR_REPEAT = 1
    ESCALATION = 2


ORIGIN_NAMES: tuple[str, ...] = tuple(o.name.lower() for o in Origin)


class Feedback(IntEnum):
    """What the reporter was told."""

    FIXED = 0
    NOT_FIXED = 1
    SILENCE = 2


FEEDBACK_NAMES: tuple[str, ...] = tuple(f.name.lower() for f in Feedback)

#: name -> code look-ups (for loops over names).
CAT: dict[str, int] = {name: int(Category[name.upper()]) for name in CATEGORIES}
CH: dict[str, int] = {name: int(Channel[name.upper()]) for name in CHANNELS}
HD: dict[str, int] = {name: int(Handler[name.upper()]) for name in HANDLER_NAMES}
