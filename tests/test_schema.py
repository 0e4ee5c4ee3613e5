"""The one typed schema (usemabench.core.schema): protocols and weights configs with wrong types are refused,
naming the file and the field, before any value is used."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from reliability_cases import PROTOCOLS, WEIGHTS_CONFIGS, params
from usemabench.core.schema import PROTOCOL_SCHEMA, RECORD_SCHEMA, WEIGHTS_CONFIG_SCHEMA, SchemaError, validate_weights_config
from usemabench.runners.protocol import ProtocolError, load_protocol


@pytest.mark.parametrize("schema", [RECORD_SCHEMA, PROTOCOL_SCHEMA, WEIGHTS_CONFIG_SCHEMA], ids=["record", "protocol", "weights-config"])
def test_the_schemas_are_valid_json_schema(schema):
    Draft202012Validator.check_schema(schema)


def test_every_packaged_protocol_follows_the_schema():
    from usemabench.runners.protocol import available_protocols

    for name in available_protocols():
        assert load_protocol(name).name == name


@pytest.mark.parametrize("case", params(PROTOCOLS))
def test_a_wrongly_typed_protocol_is_refused_naming_file_and_field(tmp_path, case):
    contents = json.loads(json.dumps(load_protocol("quick").contents))
    section = contents[case.data["section"]] if "section" in case.data else contents
    section[case.data["key"]] = case.data["value"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(contents))
    with pytest.raises(ProtocolError, match=case.message):
        load_protocol(path)


@pytest.mark.parametrize("case", params(WEIGHTS_CONFIGS))
def test_a_wrongly_typed_weights_config_is_refused_naming_file_and_field(case):
    config = {"usemabench_name": "unet", "in_channels": 1, "num_classes": 2, "overrides": {}, "usemabench_version": "0.1.0"}
    assert validate_weights_config(dict(config), "weights/config.json") == config
    if case.data.get("delete"):
        del config[case.data["key"]]
    else:
        config[case.data["key"]] = case.data["value"]
    with pytest.raises(SchemaError, match=case.message):
        validate_weights_config(config, "weights/config.json")


def test_a_long_wrong_value_is_shortened_in_the_message():
    config = {"usemabench_name": "unet", "in_channels": 1, "num_classes": 2, "overrides": ["x" * 500]}
    with pytest.raises(SchemaError) as error:
        validate_weights_config(config, "config.json")
    assert "overrides: expected object" in str(error.value) and len(str(error.value)) < 150
