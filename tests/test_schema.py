"""The one typed schema (usemabench.core.schema): protocols with wrong types are refused, naming the file and
the field, before any value is used."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from reliability_cases import PROTOCOLS, params
from usemabench.core.schema import PROTOCOL_SCHEMA, RECORD_SCHEMA
from usemabench.runners.protocol import ProtocolError, load_protocol


@pytest.mark.parametrize("schema", [RECORD_SCHEMA, PROTOCOL_SCHEMA], ids=["record", "protocol"])
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
