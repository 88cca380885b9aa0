"""The one schema walker (sim/schema.py): key paths, valid keys, leaf parameters, and the one
validation-error formatter that scenario and experiment files share."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sim import schema
from sim.batch.spec import ExperimentError, ExperimentSpec, build_experiment, load_experiment
from sim.scenario import GridsConfig, Scenario, ScenarioError, UrbanCentre, load_scenario


def test_field_at_follows_sections_only():
    assert schema.field_at(Scenario, "grids.count") is GridsConfig.model_fields["count"]
    assert schema.field_at(Scenario, ("incidents", "hazard", "base_rate")) is not None
    assert schema.field_at(Scenario, "grids.cuont") is None
    assert schema.field_at(Scenario, "grids.count.x") is None
    # a dotted key cannot address one element of a list, as --set cannot
    assert schema.field_at(Scenario, "city.centres.x") is None


def test_model_at_and_valid_keys_follow_error_locations():
    assert schema.model_at(Scenario, ()) is Scenario
    assert schema.model_at(Scenario, ("city", "centres", 0)) is UrbanCentre
    assert schema.model_at(Scenario, ("grids", "count")) is None
    assert schema.valid_keys(Scenario, ("grids",)) == ["area_weight", "count"]
    assert "base_samples" in schema.valid_keys(ExperimentSpec, ("design",))
    assert "set" in schema.valid_keys(ExperimentSpec, ("scenarios", 0))
    assert schema.valid_keys(Scenario, ("nowhere",)) == []


def test_iter_parameters_reaches_nested_and_tuple_fields():
    keys = [p.key for p in schema.iter_parameters(Scenario)]
    assert "grids.count" in keys and "incidents.welfare.harm_hazard" in keys
    assert "city.centres[].radius_km" in keys
    assert len(keys) == len(set(keys))
    first = next(p for p in schema.iter_parameters(Scenario) if p.key == "grids.count")
    assert first.default == Scenario().grids.count


def test_one_formatter_for_scenarios_and_experiments():
    with pytest.raises(ValidationError) as err:
        ExperimentSpec.model_validate({"name": "x", "scenarios": [], "seed": -1, "dayz": 3})
    message, key = schema.format_validation_error(err.value, ExperimentSpec)
    assert key == "scenarios"
    assert "also:" in message and "key 'seed': value -1 is not allowed" in message
    assert "key 'dayz': unknown key (value 3); valid keys here are: days, description" in message
    with pytest.raises(ValidationError) as err:
        ExperimentSpec.model_validate({"scenarios": [{"label": "a", "scenario": "default.yaml"}],
                                       "seed": 1})
    message, key = schema.format_validation_error(err.value, ExperimentSpec)
    assert (message, key) == ("key 'name': required key is missing (Used as the results folder"
                              " name.)", "name")
    with pytest.raises(ScenarioError) as serr:
        load_scenario(None, {"grids.count": 0})
    assert serr.value.key == "grids.count" and "Number of grids" in str(serr.value)
    with pytest.raises(ExperimentError) as eerr:
        build_experiment({"name": "x", "scenarios": [{"label": "a", "scenario": "default.yaml",
                                                      "sett": {}}], "seed": 1}, "spec.yaml")
    assert str(eerr.value).startswith("spec.yaml: key 'scenarios.0.sett': unknown key")
    assert eerr.value.file == "spec.yaml" and eerr.value.key == "scenarios.0.sett"


def test_experiment_yaml_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nscenarios: [\n")
    with pytest.raises(ExperimentError, match=r"bad.yaml: YAML syntax error at line \d+"):
        load_experiment(bad)
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    with pytest.raises(ExperimentError, match="list.yaml: the experiment file must be a YAML mapping"):
        load_experiment(notmap)
