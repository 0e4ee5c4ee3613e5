"""The one typed schema (usemabench.core.schema): protocols with wrong types are refused, naming the file and
the field, before any value is used."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from reliability_cases import PROTOCOLS, params
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


def test_a_wrongly_typed_weights_config_names_the_file_and_field():
    config = {"usemabench_name": "unet", "in_channels": 1, "num_classes": 2, "overrides": {}, "usemabench_version": "0.1.0"}
    assert validate_weights_config(dict(config), "weights/config.json") == config
    with pytest.raises(SchemaError, match=r"weights/config\.json: in_channels: expected integer, got '1'"):
        validate_weights_config({**config, "in_channels": "1"}, "weights/config.json")
    with pytest.raises(SchemaError, match=r"\(top level\): missing usemabench_name"):
        validate_weights_config({key: value for key, value in config.items() if key != "usemabench_name"}, "config.json")
    with pytest.raises(SchemaError) as error:  # a long wrong value is shortened
        validate_weights_config({**config, "overrides": ["x" * 500]}, "config.json")
    assert "overrides: expected object" in str(error.value) and len(str(error.value)) < 150
