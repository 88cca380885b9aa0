"""Scenario files: a typed, frozen, strictly validated description of one city and its policy.

A scenario is everything that differs between two simulated cities or two policies
(levers such as the grid count, police-grid fusion, channels and paperwork). How a batch is
run (replications, designs, seeds) belongs to experiments, not here.

Defaults live in this file and nowhere else. Each field says its unit and where its default
comes from: a figure of the reference city in ``DESIGN.md`` section 1 ("Pingxiang"), another
cited figure, or "assumed" when no source pins it down. The default values describe a
district of about 100,000 people after the reform; ``scenarios/*.yaml`` override them.

Files are YAML. ``extends: other.yaml`` inherits another file (path relative to the file, or a
name under ``scenarios/``); the child's keys are merged over the parent's, mappings deeply,
lists replaced. ``--set section.key=value`` overrides single keys after loading.

Every error (YAML syntax, unknown key, wrong type, out-of-range value, missing ``extends``
target, a cycle of ``extends``) raises :class:`ScenarioError` naming the file, the key path,
the bad value and what is allowed, before any simulation work starts.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sim import limits, schema
from sim.codes import CATEGORIES, CHANNELS, HANDLERS  # noqa: F401  (CHANNELS, HANDLERS re-exported)
from sim.files import InputError, parse_yaml, read_yaml, short, short_text
from sim.paths import SCENARIO_DIR


class ScenarioError(InputError):
    """A scenario file or override is invalid. ``str()`` is a message fit for the user:
    ``"FILE: key 'a.b': ..."``; ``file`` and ``key`` are also attributes."""


class _Section(BaseModel):
    # allow_inf_nan=False: .inf and .nan are refused here, not found deep in the model
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        # one rule for every scalar key (sim.schema.strict_scalar): no bool as a number, no
        # text as a number, numbers finite and within what the model computes safely
        return schema.strict_scalar(cls.model_fields[info.field_name].annotation, value)


def _f(default: Any, desc: str, **kw: Any) -> Any:
    return Field(default, description=desc, **kw)


# --------------------------------------------------------------------------- city & space
class UrbanCentre(_Section):
    x: float = _f(0.5, "Centre position as a fraction of the lattice width (0 = west edge).", ge=0, le=1)
    y: float = _f(0.5, "Centre position as a fraction of the lattice height (0 = north edge).", ge=0, le=1)
    share: float = _f(0.85, "Share of the total population living around this centre.", ge=0, le=1)
    radius_km: float = _f(
        1.5, "e-folding radius of the exponential density decline (Clark's law), km. Assumed.", gt=0
    )


class CityConfig(_Section):
    width: int = _f(40, "Lattice width in cells.", ge=2, le=2000)
    height: int = _f(40, "Lattice height in cells.", ge=2, le=2000)
    cell_km: float = _f(0.25, "Side of one square cell, km (DESIGN.md section 2: e.g. 250 m).", gt=0, le=10)
    population: int = _f(
        100_000, "Resident population, people. Default: a district of ~100k (issue 2).", ge=1
    )
    centres: tuple[UrbanCentre, ...] = _f(
        (UrbanCentre(),), "Urban centres (position, population share, radius)."
    )
    rural_share: float = _f(
        0.15, "Share of the population spread as rural background. Assumed.", ge=0, le=1
    )
    noise_sigma: float = _f(
        0.35, "Lognormal sigma of cell-to-cell population noise. Assumed.", ge=0, le=3
    )
    risk_sigma: float = _f(
        0.4, "Lognormal sigma of the background risk field (mean 1). Assumed.", ge=0, le=3
    )
    risk_correlation_km: float = _f(
        0.75, "Spatial correlation length of background risk, km. Assumed.", ge=0
    )
    urban_density_per_km2: float = _f(
        1500.0,
        "Density at or above which a cell counts as urban, people/km2 (China's urban-area"
        " statistical threshold is 1500/km2).",
        ge=0,
    )

    @model_validator(mode="after")
    def _shares(self) -> CityConfig:
        total = sum(c.share for c in self.centres) + self.rural_share
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"centre shares plus rural_share must add up to 1, they add up to {total:.6g}"
            )
        return self


class AdminConfig(_Section):
    counties: int = _f(1, "County-level units (districts/counties). Pingxiang: 5.", ge=1)
    townships: int = _f(4, "Townships/streets in all. Assumed for the default district.", ge=1)
    communities: int = _f(
        20, "Communities/administrative villages in all. Assumed (~5,000 people each).", ge=1
    )


class GridsConfig(_Section):
    count: int = _f(
        176,
        "Number of grids. Default keeps Pingxiang's post-reform ratio (1.8 M people / 3172 grids"
        " = 569 people per grid) for 100k people.",
        ge=1,
    )
    area_weight: float = _f(
        0.05,
        "Weight of a cell's area in the partition, as a fraction of a mean cell's population, so"
        " that empty land still joins some grid. Assumed.",
        ge=0,
        le=10,
    )


# --------------------------------------------------------------------------- population
class PopulationConfig(_Section):
    scale: float = _f(
        1.0, "People represented by one resident agent (1 = everyone represented).", ge=1
    )
    elderly_alone_share: float = _f(
        0.06,
        "Share of residents who are elderly and living alone. Assumed (China: ~1 in 10 people is"
        " 65+, of whom roughly half live alone or with a spouse only).",
        ge=0,
        le=1,
    )
    party_household_share: float = _f(
        0.07,
        "Share of residents in party-member households (party members are ~7% of China's"
        " population).",
        ge=0,
        le=1,
    )
    party_report_multiplier: float = _f(
        1.5, "Reporting propensity multiplier for party-member households. Assumed.", ge=0
    )
    party_mediation_bonus: float = _f(
        0.05,
        "Mediation success probability changes by this times (the cell's share of party-member"
        " households / the city's share - 1), capped at 3x the city's share: party-member"
        " households help mediate (DESIGN.md grid hierarchy), around the city-wide rate."
        " Assumed.",
        ge=0,
        le=0.5,
    )
    trust_mean: float = _f(0.6, "Mean initial trust in local government, [0, 1]. Assumed.", ge=0, le=1)
    trust_sd: float = _f(0.15, "Spread of initial trust (beta distribution sd). Assumed.", ge=0, le=0.5)
    elderly_welfare_multiplier: float = _f(
        8.0,
        "How many times more often an elderly person living alone is the subject of a welfare"
        " need than an average resident. Assumed.",
        ge=0,
    )


# --------------------------------------------------------------------------- incidents
_CAT_SOURCE = (
    " Defaults differ by category (see IncidentsConfig): assumed, unless the incidents table in"
    " docs/MODEL.md names a source."
)


def _fc(default: Any, desc: str, **kw: Any) -> Any:
    return _f(default, desc + _CAT_SOURCE, **kw)


Route = Literal["community", "township", "county", "police", "mediation", "social_work"]


class CategoryConfig(_Section):
    base_rate: float = _f(
        10.0,
        "Background incidents per 1000 residents per year (before risk and feedbacks). Defaults:"
        " Beijing Dongcheng's ~0.53 cases per resident-year (DESIGN.md section 4) split between"
        " categories by assumption (see IncidentsConfig).",
        ge=0,
    )
    latent: bool = _fc(
        False, "Latent problems persist unseen until someone finds them (hazards, broken things)."
    )
    visibility: float = _fc(
        0.5,
        "How noticeable to passers-by, [0, 1]: scales snap-report detection (the hotline hazard"
        " of latent problems, public_report_hazard, already includes it).",
        ge=0,
        le=1,
    )
    has_victim: bool = _fc(False, "Whether the incident has a resident victim or subject.")
    victim_report_prob: float = _fc(
        0.0,
        "Non-latent: probability the victim or a witness calls the hotline at trust 0.5.",
        ge=0,
        le=1,
    )
    public_report_hazard: float = _fc(
        0.0,
        "Latent: daily hotline reporting hazard per 100 residents of the cell, at trust 0.5"
        " and visibility already included.",
        ge=0,
        le=1,
    )
    report_window_days: float = _fc(
        3.0, "Non-latent: after this many days an undiscovered incident lapses (dark figure).", gt=0
    )
    patrol_detect_prob: float = _fc(
        0.5, "Probability that a patrol visit to the cell finds the incident if present.", ge=0, le=1
    )
    route: Route = _fc("township", "Where triage sends it by default.")
    joint: bool = _fc(
        False,
        "Needs both police and grid staff (public order, disputes, hazards such as illegal"
        " fireworks stores): without police-grid fusion such a case is handed between offices"
        " (handling.handoff) before anyone acts on it.",
    )
    rural_rate_factor: float = _fc(
        1.0,
        "Multiplies base_rate in rural cells (city.urban False, below"
        " city.urban_density_per_km2); urban cells take base_rate itself, because its volume"
        " anchor, ~0.5 cases per resident-year, is central Beijing's (Dongcheng)"
        " city-management caseload. Rural factors: fewer public-order incidents, streets,"
        " pipes and public facilities per resident, more welfare needs (older, left-behind"
        " residents).",
        ge=0,
        le=10,
    )
    service_mean_days: float = _fc(
        1.0, "Mean handling time of one attempt, days (server busy time).", gt=0
    )
    service_cv: float = _fc(
        1.0, "Coefficient of variation of handling time (lognormal; 1 with `exponential`).", gt=0
    )
    service_dist: Literal["lognormal", "exponential"] = _fc("lognormal", "Handling time distribution.")
    on_spot_fix_prob: float = _fc(
        0.0, "Probability a grid worker who finds it fixes it on the spot.", ge=0, le=1
    )
    on_spot_hours: float = _fc(0.5, "Grid worker hours an on-the-spot fix takes.", ge=0, le=24)
    success_prob: float = _f(
        0.9,
        "Probability that one handling attempt truly resolves it (at tier multiplier 1)."
        " Defaults assumed, except disputes: 0.87, Lianhua county's mediation rooms (DESIGN.md).",
        ge=0, le=1,
    )
    paper_close_prob: float = _fc(
        0.5,
        "Given an attempt did not resolve it, probability the handler closes it anyway on paper"
        " (closed but not resolved); otherwise the attempt fails and is escalated.",
        ge=0,
        le=1,
    )
    deadline_days: float = _fc(
        3.0, "Days from report to closure counted as on time. Assumed unless stated.", gt=0
    )
    severity_sigma: float = _fc(
        0.8, "Lognormal sigma of severity (mean 1); severity sets priority and risk tier.", ge=0, le=4
    )
    harm_hazard: float = _fc(
        0.0, "Daily probability that an unresolved known-or-latent problem harms someone.", ge=0, le=1
    )
    escalation_hazard: float = _fc(
        0.0,
        "Daily probability that an open, unmediated dispute turns into a public-safety incident.",
        ge=0,
        le=1,
    )
    deterrable: bool = _fc(False, "Whether visible guardians deter it (routine-activity theory).")
    disorder_sensitivity: float = _fc(
        0.0,
        "Broken-windows feedback: the rate is multiplied by 1 + this x ln(1 + D), D the"
        " visibility-weighted unresolved latent problems in the cell and its Moore neighbours.",
        ge=0,
    )
    near_repeat_branching: float = _fc(
        0.0,
        "Near-repeat branching ratio: expected incidents directly triggered by one incident"
        " (Hawkes). Must be < 1.",
        ge=0,
        lt=1,
    )
    near_repeat_days: float = _fc(7.0, "Mean delay of a triggered incident, days.", gt=0)
    near_repeat_same_cell: float = _fc(
        0.5, "Probability a triggered incident is in the same cell (else a Moore neighbour).",
        ge=0, le=1,
    )
    safety_impact: float = _fc(
        0.0, "Weight of witnessing/living near this category in perceived safety.", ge=0, le=10
    )


def _cat(**kw: Any) -> Any:
    return Field(default_factory=lambda: CategoryConfig(**kw))


class IncidentsConfig(_Section):
    """The six categories. Rates: Beijing Dongcheng logs ~0.53 cases per resident-year (40,000
    a month for ~0.9 M people, DESIGN.md section 4), mostly city-management problems; the
    occurring rates below sum to ~0.62 per resident-year so that recorded cases land near that
    figure once detection is incomplete. Split between categories: assumed from the Dongcheng
    mix (city management ~70%), China's ~9 M mediated disputes a year, and police call volumes."""

    public_safety: CategoryConfig = _cat(
        base_rate=25.0, has_victim=True, victim_report_prob=0.55, report_window_days=2.0,
        visibility=0.6, patrol_detect_prob=0.25, route="police", service_mean_days=0.25,
        service_cv=1.0, success_prob=0.85, paper_close_prob=0.3, deadline_days=1.0,
        severity_sigma=0.9, deterrable=True, disorder_sensitivity=0.1,
        near_repeat_branching=0.2, near_repeat_days=5.0, safety_impact=1.0, joint=True,
        rural_rate_factor=0.5,
    )
    dispute: CategoryConfig = _cat(
        base_rate=40.0, has_victim=True, victim_report_prob=0.35, report_window_days=10.0,
        visibility=0.3, patrol_detect_prob=0.3, route="mediation", service_mean_days=1.0,
        service_cv=1.0, success_prob=0.87, paper_close_prob=0.3, deadline_days=2.0,
        severity_sigma=0.7, escalation_hazard=0.01, deterrable=True,
        near_repeat_branching=0.1, near_repeat_days=10.0, safety_impact=0.3, joint=True,
        rural_rate_factor=0.8,
    )
    infrastructure: CategoryConfig = _cat(
        base_rate=300.0, latent=True, visibility=0.6, public_report_hazard=0.04,
        patrol_detect_prob=0.6, route="community", service_mean_days=0.5, service_cv=1.2,
        on_spot_fix_prob=0.3, on_spot_hours=0.4, success_prob=0.92, paper_close_prob=0.5,
        deadline_days=3.0, severity_sigma=0.7, harm_hazard=0.0005, disorder_sensitivity=0.0,
        safety_impact=0.1, rural_rate_factor=0.3,
    )
    environment: CategoryConfig = _cat(
        base_rate=150.0, latent=True, visibility=0.7, public_report_hazard=0.03,
        patrol_detect_prob=0.6, route="community", service_mean_days=0.4, service_cv=1.0,
        on_spot_fix_prob=0.4, on_spot_hours=0.5, success_prob=0.9, paper_close_prob=0.5,
        deadline_days=3.0, severity_sigma=0.6, safety_impact=0.1, rural_rate_factor=0.5,
    )
    hazard: CategoryConfig = _cat(
        base_rate=60.0, latent=True, visibility=0.3, public_report_hazard=0.01,
        patrol_detect_prob=0.5, route="township", service_mean_days=1.0, service_cv=1.0,
        on_spot_fix_prob=0.15, on_spot_hours=1.0, success_prob=0.85, paper_close_prob=0.4,
        deadline_days=7.0, severity_sigma=1.0, harm_hazard=0.002, safety_impact=0.3, joint=True,
    )
    welfare: CategoryConfig = _cat(
        base_rate=50.0, latent=True, has_victim=True, visibility=0.1, public_report_hazard=0.01,
        patrol_detect_prob=0.7, route="community", service_mean_days=0.5, service_cv=0.8,
        on_spot_fix_prob=0.3, on_spot_hours=1.0, success_prob=0.9, paper_close_prob=0.5,
        deadline_days=5.0, severity_sigma=0.6, harm_hazard=0.001, safety_impact=0.05,
        rural_rate_factor=1.3,
    )

    def items(self) -> list[tuple[str, CategoryConfig]]:
        """Categories in canonical order."""
        return [(name, getattr(self, name)) for name in CATEGORIES]


# --------------------------------------------------------------------------- channels
class HotlineConfig(_Section):
    enabled: bool = _f(True, "12345 / 110 calls by victims, witnesses and neighbours.")
    latency_hours: float = _f(1.0, "Mean delay from noticing to calling, hours. Assumed.", ge=0)
    trust_elasticity: float = _f(
        1.0, "Propensity multiplier = (trust / 0.5) ** elasticity. Assumed.", ge=0, le=5
    )
    report_share: float = _f(
        0.5,
        "Share of the residents who notice a latent problem that call about it, at the reference"
        " propensity 1 (trust 0.5, no feedback boost); a resident with propensity pi calls with"
        " probability min(1, report_share x pi). public_report_hazard stays the calling hazard at"
        " propensity 1, so neighbours notice at public_report_hazard / report_share. Assumed.",
        gt=0,
        le=1,
    )


class SnapReportConfig(_Section):
    enabled: bool = _f(True, "The snap-and-report phone app (随手拍).")
    latency_hours: float = _f(0.5, "Mean delay from noticing to uploading, hours. Assumed.", ge=0)
    resident_adoption: float = _f(
        0.10, "Share of residents with the app who report what they pass. Assumed.", ge=0, le=1
    )
    resident_hazard: float = _f(
        0.004,
        "Daily probability that one app-using resident reports a given visible latent problem in"
        " their cell, at visibility 1 and propensity 1. Assumed.",
        ge=0,
        le=1,
    )
    report_share: float = _f(
        0.5,
        "Share of the app users who notice a problem that upload it, at propensity 1: they notice"
        " with probability resident_hazard x visibility / report_share a day and upload with"
        " probability min(1, report_share x propensity). Riders and volunteers, enlisted to"
        " report, upload all they notice. Assumed.",
        gt=0,
        le=1,
    )
    rider_detect_prob: float = _f(
        0.00019,
        "Probability that a rider passing through a cell reports a given latent problem there, at"
        " visibility 1. Calibrated to the source: 3,900 riders reported 2,900 problems"
        " cumulatively (the period is not given; assumed one year: 0.062 reports per rider per"
        " month). In pingxiang_reform (population.scale 20, 120 days, seed 20240101) 0.002 gave"
        " 0.651 per rider-month and 0.001 gave 0.325 (linear within 0.2%), so 0.002 x 0.062 /"
        " 0.651 = 0.00019, which gave 0.061.",
        ge=0,
        le=1,
    )
    volunteer_detect_prob: float = _f(
        0.01,
        "Probability that an active volunteer's round finds a given latent problem in a cell it"
        " visits, at visibility 1. Assumed.",
        ge=0,
        le=1,
    )


class PatrolChannelConfig(_Section):
    enabled: bool = _f(True, "Whether this patrol channel reports what it finds.")
    latency_hours: float = _f(0.5, "Mean delay from finding to reporting, hours. Assumed.", ge=0)


class JointScreeningConfig(_Section):
    enabled: bool = _f(
        True, "Periodic joint police-grid risk screening (风险联排); only active with fusion."
    )
    interval_days: int = _f(30, "Days between screening rounds of one grid. Assumed.", ge=1, le=365)
    detect_prob: float = _f(
        0.8, "Probability a screening round finds a latent problem in a screened cell. Assumed.",
        ge=0, le=1,
    )
    latency_hours: float = _f(2.0, "Delay from finding to reporting, hours. Assumed.", ge=0)


class DroneConfig(_Section):
    enabled: bool = _f(False, "Drone patrols for environment incidents (Wugong Mountain).")
    cells_per_day: int = _f(200, "Cells overflown per day. Assumed.", ge=0)
    detect_prob: float = _f(
        0.5, "Detection probability for environment incidents. Assumed.", ge=0, le=1
    )
    latency_hours: float = _f(4.0, "Delay from footage to report, hours. Assumed.", ge=0)


class DeliberationConfig(_Section):
    enabled: bool = _f(
        False,
        "Residents' deliberation meetings (议事会): each community meets every interval_days;"
        " residents raise the problems they know of in the community together and many are"
        " settled on the spot.",
    )
    interval_days: float = _f(
        285.0,
        "Days between two meetings of one community (meetings are staggered by community id)."
        " Default: Pingxiang's 1,100 meetings over its 860 communities, 860 x 365 / 1100 = 285"
        " days (the source gives 1,100 meetings; the period is assumed a year).",
        ge=1,
        le=3650,
    )
    requests_per_meeting: int = _f(
        30,
        "Problems one meeting takes up (its capacity), the most severe first: problems no office"
        " holds (unreported, or closed on paper but persisting) and follow-ups of cases in hand."
        " Assumed.",
        ge=0,
        le=10_000,
    )
    settle_prob: float = _f(
        0.72,
        "Share of the raised problems that no office holds which the meeting settles on the spot"
        " (the rest go to triage). Default: 23,900 requests resolved in 1,100 meetings (21.7 a"
        " meeting) over a capacity of 30, 21.7 / 30 = 0.72. Assumed capacity.",
        ge=0,
        le=1,
    )
    latency_hours: float = _f(
        0.0, "Mean delay from the meeting to the report of a raised problem, hours. Assumed.", ge=0
    )


class ChannelsConfig(_Section):
    hotline: HotlineConfig = Field(default_factory=HotlineConfig)
    snap_report: SnapReportConfig = Field(default_factory=SnapReportConfig)
    grid_patrol: PatrolChannelConfig = Field(default_factory=PatrolChannelConfig)
    police_patrol: PatrolChannelConfig = Field(default_factory=PatrolChannelConfig)
    joint_screening: JointScreeningConfig = Field(default_factory=JointScreeningConfig)
    drone: DroneConfig = Field(default_factory=DroneConfig)
    deliberation: DeliberationConfig = Field(default_factory=DeliberationConfig)


# --------------------------------------------------------------------------- staff
class GridWorkersConfig(_Section):
    per_grid: float = _f(
        1.0,
        "Full-time grid workers per grid (DESIGN.md: one per grid); a real number, e.g. 0.5 for"
        " one worker covering two grids. Used when `total` is not given.",
        ge=0,
        le=20,
    )
    total: int | None = _f(
        None,
        "Grid workers in the whole city. When given, it fixes the staff independently of the"
        " grid count, and workers are spread over grids in proportion to their population"
        " (a worker may cover parts of several grids); when None, per_grid x grids.count.",
        ge=0,
        le=10_000_000,
    )
    hours_per_day: float = _f(
        8.0, "Working hours per worker per day (China's standard 8-hour working day).", gt=0, le=24
    )
    visit_hours_per_cell: float = _f(
        0.35, "Hours to walk and inspect one cell on patrol (250 m block). Assumed.", gt=0
    )
    walk_kmh: float = _f(4.0, "Walking speed between cells, km/h. Assumed.", gt=0)
    target_revisit_days: float = _f(
        7.0, "Days in which a worker aims to visit every cell of the grid once. Assumed.", gt=0
    )
    household_size: float = _f(
        2.62, "People per household (China 2020 census: 2.62).", gt=0
    )
    household_visit_hours: float = _f(
        0.25, "Hours per household call on patrol (入户走访). Assumed.", ge=0
    )
    household_revisit_days: float = _f(
        30.0, "Days in which a worker aims to call on every household once. Assumed.", gt=0
    )
    case_hours_per_case: float = _f(
        0.5,
        "Worker hours per case in the grid that goes to the community tier (visit, verify,"
        " feed back). Assumed.",
        ge=0,
    )
    overload_slowdown: bool = _f(
        True,
        "Case work a grid's workers cannot do today is carried over to tomorrow, and the"
        " community tier's cases in an overloaded grid (case hours waiting > hours free for"
        " cases) take proportionally longer.",
    )


class PaperworkConfig(_Section):
    forms: int = _f(49, "Routine forms a grid worker keeps (Pingxiang: 118 before, 49 after).", ge=0)
    hours_per_form_per_month: float = _f(
        0.6, "Hours each form costs a worker per month. Assumed.", ge=0
    )
    inspection_items: int = _f(
        26, "Inspection/assessment items (Pingxiang: cut by 74%; 100 before assumed).", ge=0
    )
    hours_per_item_per_month: float = _f(
        0.5, "Hours each inspection item costs a worker per month. Assumed.", ge=0
    )
    working_days_per_month: float = _f(21.75, "Working days per month (China's statutory figure).", gt=0)
    report_hours_per_form: float = _f(
        0.01,
        "Hours of paperwork that recording one found problem costs per routine form kept"
        " (entries repeated across forms): 118 forms -> 1.2 h a report, 49 -> 0.5 h. Assumed.",
        ge=0,
    )
    record_tolerance_hours: float = _f(
        2.0,
        "Paperwork per report at which staff (grid workers, officers, screening teams, drone"
        " operators) record half of the problems they notice and leave the rest unrecorded:"
        " p(record) = 1 / (1 + report_hours_per_form x forms / this). Assumed.",
        gt=0,
    )


class PoliceConfig(_Section):
    officers: int = _f(
        100,
        "Officers (incl. auxiliaries) available for community patrol and response. Assumed: ~1"
        " per 1000 residents.",
        ge=0,
    )
    patrol_hours_per_day: float = _f(4.0, "Hours per officer per day on patrol. Assumed.", ge=0, le=24)
    visit_hours_per_cell: float = _f(0.25, "Hours per cell visited on patrol. Assumed.", gt=0)
    grid_matter_attention: float = _f(
        0.05,
        "Officers on patrol notice non-police problems (infrastructure, environment, hazards,"
        " welfare) at this fraction of a grid worker's detection probability. Assumed.",
        ge=0,
        le=1,
    )
    strategy: Literal["random", "hotspot"] = _f(
        "random", "random: visits weighted by population; hotspot: by recent incidents."
    )
    response_speed_kmh: float = _f(
        25.0,
        "Average driving speed to an incident, km/h: response travel takes half the beat's side"
        " at this speed (shorter beats under fusion mean faster response). Assumed.",
        gt=0,
    )
    response_servers_per_officer: float = _f(
        0.05,
        "Concurrent response capacity per officer (servers in the police handling pool). Assumed.",
        ge=0,
    )


class VolunteersConfig(_Section):
    community: int = _f(
        21_000,
        "Registered community volunteers, people (Pingxiang: 377,000 for 1.8 M, i.e. 21%).",
        ge=0,
    )
    community_active_share: float = _f(
        0.02, "Share of registered volunteers out on a given day. Assumed.", ge=0, le=1
    )
    volunteer_police: int = _f(
        140, "Volunteer police, people (Shangli county: 2517 for ~0.45 M people).", ge=0
    )
    volunteer_police_active_share: float = _f(
        0.2, "Share of volunteer police out on patrol on a given day. Assumed.", ge=0, le=1
    )
    riders: int = _f(
        216,
        "Delivery riders with the reporting app, people (Pingxiang: 3900 for 1.8 M).",
        ge=0,
    )
    rider_cells_per_day: int = _f(
        60, "Cell passes per rider per working day (a cell may be passed more than once). Assumed.",
        ge=0,
    )
    volunteer_cells_per_day: int = _f(4, "Cells an active volunteer walks per day. Assumed.", ge=0)
    agent_scale: float = _f(
        1.0, "People represented by one volunteer/rider agent (use >1 at city scale).", ge=1
    )
    mediation_servers_per_100_vpolice: float = _f(
        2.0, "Mediation servers added per 100 volunteer police. Assumed.", ge=0
    )


# --------------------------------------------------------------------------- handling
class HandlerConfig(_Section):
    servers_per_10k: float = _f(
        2.0,
        "Parallel cases this tier can hold per 10,000 risk-weighted residents (population x"
        " background risk) of each of its units (a unit's pool gets at least one server)."
        " Assumed, set so that the default district runs its pools at roughly 50-80%"
        " utilisation.",
        ge=0,
    )
    staff: int | None = _f(
        None,
        "Parallel cases this tier can hold in the whole city, in absolute staff; spread over its"
        " units by risk-weighted population. Overrides servers_per_10k, so that a scenario can"
        " under-staff a tier. None: servers_per_10k applies.",
        ge=0,
        le=10_000_000,
    )
    speed: float = _f(1.0, "Handling-time divisor (2 = twice as fast). Assumed per tier.", gt=0)
    success_multiplier: float = _f(
        1.0, "Multiplies categories' success_prob (capped at 1). Assumed per tier.", ge=0
    )


def _handler(**kw: Any) -> Any:
    return Field(default_factory=lambda: HandlerConfig(**kw))


class HandoffConfig(_Section):
    delay_hours: float = _f(
        24.0,
        "Mean delay of one hand-off between the police and the grid/township offices for a case"
        " that needs both (categories with joint: true), before police-grid fusion gave them a"
        " shared intake. Assumed.",
        ge=0,
        le=24 * 365,
    )
    bounce_prob: float = _f(
        0.15,
        "Probability that the receiving office sends the case back (another hand-off). Assumed.",
        ge=0,
        le=0.95,
    )
    drop_prob: float = _f(
        0.03,
        "Probability that a hand-off loses the case between offices: nobody handles it until its"
        " reporter complains (handling.reopen_prob) or someone reports it again. Assumed.",
        ge=0,
        le=1,
    )


class SocialWorkConfig(_Section):
    enabled: bool = _f(
        False,
        "Social workers (社工) handle welfare cases in their own pool instead of the generic"
        " community tier.",
    )
    workers: int = _f(
        2058, "Social workers in the city (Pingxiang: 2058).", ge=0, le=10_000_000
    )
    cases_per_worker: float = _f(
        1.0, "Cases a social worker handles in parallel. Assumed.", gt=0, le=100
    )
    speed: float = _f(1.0, "Handling-time divisor for social workers. Assumed.", gt=0)
    success_multiplier: float = _f(
        1.1, "Success multiplier for social workers (trained for welfare). Assumed.", ge=0
    )


class HandlingConfig(_Section):
    triage_delay_hours: float = _f(
        4.0, "Mean delay from report to dispatch at the intake centre, hours. Assumed.", ge=0
    )
    community: HandlerConfig = _handler(servers_per_10k=8.0)
    township: HandlerConfig = _handler(servers_per_10k=2.5, speed=1.0)
    county: HandlerConfig = _handler(servers_per_10k=1.0, speed=0.8, success_multiplier=1.05)
    city: HandlerConfig = _handler(servers_per_10k=0.6, speed=1.5, success_multiplier=1.1)
    mediation: HandlerConfig = _handler(servers_per_10k=1.6)
    police_speed: float = _f(1.0, "Handling-time divisor for the police pool. Assumed.", gt=0)
    police_success_multiplier: float = _f(
        1.0, "Success multiplier for the police pool. Assumed.", ge=0
    )
    max_attempts: int = _f(4, "Attempts before a case is abandoned as failed. Assumed.", ge=1, le=20)
    reopen_prob: float = _f(
        0.5,
        "Probability that a paper-closed but unresolved case is reopened when its reporter (or a"
        " re-check) finds the problem persists. Assumed.",
        ge=0,
        le=1,
    )
    reopen_delay_days: float = _f(3.0, "Mean days until such a reopening request. Assumed.", gt=0)
    escalate_prob: float = _f(
        0.5,
        "Probability that a failed attempt below the top tier is passed a tier up; otherwise the"
        " office returns the case as unsolvable (abandoned: failed). Assumed.",
        ge=0,
        le=1,
    )
    handoff: HandoffConfig = Field(default_factory=lambda: HandoffConfig())
    social_work: SocialWorkConfig = Field(default_factory=lambda: SocialWorkConfig())


class TiersConfig(_Section):
    enabled: bool = _f(
        True, "三高 tiered responsibility: high-risk → city, high-frequency → county, rest by default."
    )
    high_risk_severity: float = _f(
        3.0,
        "Severity (mean 1) at or above which a case is high-risk and goes to the city tier."
        " Assumed (about 5% of cases at severity sigma 0.9).",
        gt=0,
    )
    high_frequency_reports: int = _f(
        3,
        "Reports of the same problem at triage (several channels or reporters found it) at or"
        " above which a complaint counts as high-frequency and goes to the county tier."
        " Assumed. (Reopened cases go one tier above their last handler instead.)",
        ge=2,
    )


class FusionConfig(_Section):
    enabled: bool = _f(True, "Police-grid fusion (警网融合): shared intake, joint screening, grid beats.")
    triage_delay_factor: float = _f(
        0.5, "Multiplies the triage delay with shared data. Assumed.", gt=0, le=1
    )
    police_grid_attention: float = _f(
        0.25,
        "With fusion (joint data collection), officers notice non-police problems at this"
        " fraction of a grid worker's detection probability. Assumed.",
        ge=0,
        le=1,
    )
    joint_success_bonus: float = _f(
        0.03, "Added to success probability of hazard and public-safety handling. Assumed.",
        ge=0, le=0.5,
    )


class FeedbackConfig(_Section):
    closed_loop: bool = _f(True, "The reporter is told the outcome (问题收集-分流-办结-反馈).")
    delay_hours: float = _f(12.0, "Hours from closure to feedback. Assumed.", ge=0)
    trust_gain: float = _f(
        0.10, "Trust moves this fraction of the way to 1 after a visible fix. Assumed.", ge=0, le=1
    )
    trust_loss_failure: float = _f(
        0.15, "Trust falls by this fraction after a failed or fake closure. Assumed.", ge=0, le=1
    )
    trust_loss_silence: float = _f(
        0.05, "Trust falls by this fraction when a report gets no feedback. Assumed.", ge=0, le=1
    )
    report_boost: float = _f(
        1.6, "Reporting propensity multiplier after a visible fix (field evidence: +60%).", ge=1
    )
    boost_memory_days: float = _f(
        90.0, "e-folding time of that boost, days. Assumed.", gt=0
    )


class SafetyConfig(_Section):
    baseline_mean: float = _f(
        0.985, "Mean baseline perceived safety, [0, 1] (provincial surveys: 95-99%).", ge=0, le=1
    )
    baseline_sd: float = _f(0.02, "Spread of baseline perceived safety. Assumed.", ge=0, le=0.5)
    relax_per_day: float = _f(
        0.02, "Fraction of the gap to baseline closed per day (fear outlasts crime). Assumed.",
        ge=0, le=1,
    )
    victim_drop: float = _f(0.35, "Fall in perceived safety of a victim. Assumed.", ge=0, le=1)
    exposure_drop: float = _f(
        0.03,
        "Fall per (safety-weighted incidents per 100 cell residents) witnessed today. Assumed.",
        ge=0,
    )
    disorder_drop: float = _f(
        0.007,
        "Daily fall per (unresolved visible problems per 100 cell residents). Assumed.",
        ge=0,
    )
    guardian_gain: float = _f(
        0.0001, "Daily gain per guardian visit per 100 cell residents. Assumed.", ge=0
    )
    feedback_gain: float = _f(0.03, "Gain after a visible fix of one's own report. Assumed.", ge=0)
    spread_per_day: float = _f(
        0.05,
        "Fraction of the gap to the neighbourhood (Moore) mean closed per day. Assumed.",
        ge=0,
        le=1,
    )
    survey_sample: int = _f(
        1000, "Residents sampled per survey wave (provincial phone survey). Assumed.", ge=10
    )
    survey_interval_days: int = _f(30, "Days between survey waves.", ge=1)
    survey_nonresponse_bias: float = _f(
        0.0, "Added to perceived safety before the answer threshold (acquiescence). Assumed 0.",
        ge=-1, le=1,
    )
    survey_safe_threshold: float = _f(
        0.6,
        "A respondent answers 'safe' when perceived safety + bias + noise exceeds this, [0, 1]."
        " Assumed: a fresh victim of a public-safety incident (baseline 0.985 - victim_drop"
        " 0.35 = 0.635) answers 'safe' about two times in three.",
        ge=0, le=1,
    )
    survey_answer_sd: float = _f(
        0.1,
        "Standard deviation of the normal noise in a respondent's answer (mood, wording,"
        " recent news), on the [0, 1] safety scale. Assumed.",
        ge=0, le=1,
    )


class DynamicsConfig(_Section):
    deterrence_per_visit: float = _f(
        0.05,
        "Deterrable incident rate falls by exp(-this x guardian visits per day to the cell)."
        " Assumed (hot-spot policing reviews: ~15-20% fewer crimes where patrols concentrate).",
        ge=0,
    )
    presence_memory_days: float = _f(
        7.0, "e-folding time over which guardian presence is remembered, days. Assumed.", gt=0
    )
    hotspot_memory_days: float = _f(
        30.0, "e-folding time of the incident history hot-spot patrols use, days. Assumed.", gt=0
    )
    community_volunteer_guardian_weight: float = _f(
        0.5, "A community volunteer's visit counts as this many guardian visits. Assumed.", ge=0
    )


class Scenario(_Section):
    """A complete, validated scenario. Frozen: a running model cannot change it."""

    name: str = _f("default", "Short name, used in result folder names.")
    description: str = _f("", "What this scenario represents and where its numbers come from.")
    days: int = _f(365, "Days to simulate when the caller does not say.", ge=1, le=36_500)
    warmup_days: int = _f(
        30,
        "Days at the start left out of summary metrics: the city starts with no backlog and"
        " no hidden problems, so the first weeks are not typical.",
        ge=0,
    )
    seed: int = _f(20240101, "Default root seed when the caller does not give one.", ge=0)
    city: CityConfig = Field(default_factory=CityConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    grids: GridsConfig = Field(default_factory=GridsConfig)
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    grid_workers: GridWorkersConfig = Field(default_factory=GridWorkersConfig)
    paperwork: PaperworkConfig = Field(default_factory=PaperworkConfig)
    police: PoliceConfig = Field(default_factory=PoliceConfig)
    volunteers: VolunteersConfig = Field(default_factory=VolunteersConfig)
    handling: HandlingConfig = Field(default_factory=HandlingConfig)
    tiers: TiersConfig = Field(default_factory=TiersConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    dynamics: DynamicsConfig = Field(default_factory=DynamicsConfig)

    @model_validator(mode="after")
    def _nesting(self) -> Scenario:
        a, g, n_cells = self.admin, self.grids.count, self.city.width * self.city.height
        levels = [("admin.counties", a.counties), ("admin.townships", a.townships),
                  ("admin.communities", a.communities), ("grids.count", g)]
        for (n1, v1), (n2, v2) in zip(levels, levels[1:], strict=False):
            if v2 < v1:
                raise ValueError(f"{n2} ({v2}) must be at least {n1} ({v1}): units nest")
        if g > n_cells:
            raise ValueError(
                f"grids.count ({g}) exceeds the number of cells (city.width x city.height ="
                f" {n_cells}): every grid needs at least one cell"
            )
        return self

    # ------------------------------------------------------------------ helpers
    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able dict of every resolved value."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """SHA-256 of the resolved scenario: two scenarios with equal digests are identical."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def with_overrides(self, overrides: dict[str, Any], *, source: str = "overrides") -> Scenario:
        """A new scenario with dotted-key overrides applied and validated."""
        data = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(data, key, value, source=source)
        return _validate(data, source)

    def get(self, dotted: str) -> Any:
        """Value at a dotted key, e.g. ``scenario.get("grids.count")``."""
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj


# --------------------------------------------------------------------------- loading
def _deep_merge(base: dict, child: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in child.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: Longest chain of ``extends`` (a file, its parent, its grandparent, ...).
MAX_EXTENDS = 16


def resolve_scenario_path(ref: str | Path, *, relative_to: Path | None = None) -> Path:
    """Find a scenario file: a path (absolute, relative to ``relative_to`` or the working
    directory) or a name under ``scenarios/`` with or without ``.yaml``.

    Raises:
        FileNotFoundError: no such regular file (also for names the system cannot look up:
            too long, or with a NUL character); the message lists the places tried.
    """
    if not str(ref).strip():
        raise FileNotFoundError("no scenario file '' (an empty name)")
    ref = Path(ref)
    candidates = []
    if ref.is_absolute():
        candidates.append(ref)
    else:
        if relative_to is not None:
            candidates.append(relative_to / ref)
        candidates.append(Path.cwd() / ref)
        candidates.append(SCENARIO_DIR / ref)
    more = [c.with_suffix(".yaml") for c in candidates
            if c.suffix not in (".yaml", ".yml") and c.name]
    for c in candidates + more:
        try:
            if c.is_file():
                return c.resolve()
        except (OSError, ValueError):  # name too long, NUL byte: no such file either
            continue
    tried = ", ".join(short_text(str(c), 120) for c in candidates + more)
    available = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"no scenario file '{short_text(str(ref), 120)}' (looked for {tried});"
                            f" shipped scenarios: {available}")


def read_input_yaml(path: Path, error: type[InputError] = ScenarioError, *,
                    what: str = "scenario file") -> dict:
    """A YAML mapping read by :func:`sim.files.read_yaml`, its error re-raised as ``error``.

    Scenario and experiment files are read alike; each raises its own error type
    (:class:`ScenarioError`, :class:`~sim.batch.spec.ExperimentError`) with the file name and,
    for a syntax error, the line and column.
    """
    try:
        return read_yaml(path, what=what)
    except InputError as exc:
        raise error(exc.message, file=exc.file) from None


def _load_raw(path: Path, chain: tuple[Path, ...]) -> dict:
    if path in chain:
        cycle = " -> ".join(str(p.name) for p in (*chain, path))
        raise ScenarioError(f"key 'extends': cycle of extends: {cycle}", file=str(chain[0]), key="extends")
    if len(chain) >= MAX_EXTENDS:
        raise ScenarioError(f"key 'extends': more than {MAX_EXTENDS} files extend one another",
                            file=str(chain[0]), key="extends")
    data = read_input_yaml(path)
    if chain:
        # a parent named by `extends` must be a scenario: report its stray keys by name only,
        # never its values (it may be any YAML file the user can read)
        stray = sorted(str(k) for k in data if k not in Scenario.model_fields and k != "extends")
        if stray:
            shown = ", ".join(repr(short_text(k, 40)) for k in stray[:4])
            raise ScenarioError(
                f"key 'extends': {path} is not a scenario file (its keys {shown}"
                f"{' ...' if len(stray) > 4 else ''} are not scenario keys)",
                file=str(chain[-1]), key="extends")
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        return data
    if not isinstance(parent_ref, str) or not parent_ref.strip():
        raise ScenarioError(
            f"key 'extends': value {short(parent_ref)} is not allowed; give one scenario file name",
            file=str(path), key="extends",
        )
    try:
        parent_path = resolve_scenario_path(parent_ref, relative_to=path.parent)
    except FileNotFoundError as exc:
        raise ScenarioError(f"key 'extends': value {short(parent_ref)}: {exc}", file=str(path),
                            key="extends") from None
    parent = _load_raw(parent_path, (*chain, path))
    parent.pop("name", None)
    parent.pop("description", None)
    return _deep_merge(parent, data)


def _validate(data: dict, source: str) -> Scenario:
    """Validate a scenario: every key (:class:`Scenario`), then what it would allocate and
    whether its city is degenerate (:func:`sim.limits.check_scenario`)."""
    scenario = schema.validate(Scenario, data, ScenarioError, source)
    try:
        limits.check_scenario(scenario)
    except limits.LimitError as exc:
        raise ScenarioError(f"key '{exc.key}': {exc}", file=source, key=exc.key) from None
    return scenario


def _set_dotted(data: dict, key: str, value: Any, *, source: str) -> None:
    if not isinstance(key, str):
        raise ScenarioError(f"key {short(key)}: a key is a dotted name such as grids.count",
                            file=source)
    shown = short_text(key, 120)
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts):
        valid = schema.valid_keys(Scenario, parts[:i])
        if part not in valid:
            here = ".".join(parts[:i]) or "(top level)"
            raise ScenarioError(
                f"key '{shown}': unknown key '{short_text(part, 60)}' under"
                f" {short_text(here, 60)}; valid keys are: {', '.join(valid)}",
                file=source, key=shown,
            )
        if i == len(parts) - 1:
            node[part] = value
            return
        if not isinstance(node.get(part), dict):
            raise ScenarioError(f"key '{shown}': '{part}' is not a section", file=source, key=shown)
        node = node[part]


def parse_set_option(text: str) -> tuple[str, Any]:
    """Parse a command-line ``section.key=value``; the value is read as YAML (numbers, bools),
    within the limits of :func:`sim.files.parse_yaml`; text that is not YAML stays text.

    Raises:
        ScenarioError: no ``=``, an empty key, or a value beyond the YAML limits (deep
            nesting, aliases, duplicate keys).
    """
    if "=" not in text:
        raise ScenarioError(f"--set {short(text)}: expected section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ScenarioError(f"--set {short(text)}: the key before '=' is empty; expected"
                            " section.key=value")
    if not raw.strip():
        return key, raw
    try:
        value = parse_yaml(raw, source=f"--set {short_text(key, 60)}")
    except InputError as exc:
        if "syntax error" in exc.message:
            return key, raw  # not YAML: plain text (e.g. a description with a colon)
        raise ScenarioError(exc.message, file=exc.file, key=key) from None
    return key, value


def load_scenario(
    ref: str | Path | Scenario | None = None, overrides: dict[str, Any] | None = None
) -> Scenario:
    """Load and validate a scenario.

    Args:
        ref: a path to a YAML file, a name under ``scenarios/`` (``"default"``), an already
            loaded :class:`Scenario`, or None for the built-in defaults.
        overrides: dotted keys to values applied after loading, e.g. ``{"grids.count": 300}``.

    Returns:
        The frozen, validated scenario.

    Raises:
        ScenarioError: with file, key path, value and what is allowed.
    """
    if isinstance(ref, Scenario):
        scenario, source = ref, "scenario"
    elif ref is None:
        scenario, source = Scenario(), "defaults"
    else:
        try:
            path = resolve_scenario_path(ref)
        except FileNotFoundError as exc:
            raise ScenarioError(str(exc)) from None
        source = str(path)
        data = _load_raw(path, ())
        data.setdefault("name", path.stem)
        scenario = _validate(data, source)
    if overrides:
        scenario = scenario.with_overrides(overrides, source=f"{source} (overrides)")
    return scenario
