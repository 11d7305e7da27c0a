"""The test schema registry itself (test/e2e/registry.py): a real
Confluent-compatible API that confluent-kafka's client works with, with the
error codes the proxy maps, and a restart that keeps the registered ids."""

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from registry import registry  # noqa: F401  (the fixture)

SCHEMA = json.dumps({"type": "record", "name": "Reading", "namespace": "kwp.t",
                     "fields": [{"name": "sensor", "type": "string"},
                                {"name": "value", "type": "double"}]})
SCHEMA2 = json.dumps({"type": "record", "name": "Reading", "namespace": "kwp.t",
                      "fields": [{"name": "sensor", "type": "string"},
                                 {"name": "value", "type": "double"},
                                 {"name": "unit", "type": ["null", "string"],
                                  "default": None}]})


def client(reg):
    # A fresh client each time: its cache would hide the registry's answers.
    return SchemaRegistryClient({"url": reg.url})


def error_of(fn):
    with pytest.raises(SchemaRegistryError) as ei:
        fn()
    return ei.value.http_status_code, ei.value.error_code


def test_register_and_read_back(registry):
    c = client(registry)
    sid = c.register_schema("fixture-value", Schema(SCHEMA, "AVRO"))
    assert isinstance(sid, int) and sid > 0
    # By id, from a client that has not seen it.
    got = client(registry).get_schema(sid)
    assert json.loads(got.schema_str) == json.loads(SCHEMA)
    assert got.schema_type in (None, "AVRO")
    # By subject: latest and version 1.
    latest = client(registry).get_latest_version("fixture-value")
    assert (latest.schema_id, latest.subject, latest.version) == (
        sid, "fixture-value", 1)
    assert json.loads(latest.schema.schema_str) == json.loads(SCHEMA)
    v1 = client(registry).get_version("fixture-value", 1)
    assert v1.schema_id == sid
    # The same schema again is the same id; a new one is version 2.
    assert c.register_schema("fixture-value", Schema(SCHEMA, "AVRO")) == sid
    sid2 = c.register_schema("fixture-value", Schema(SCHEMA2, "AVRO"))
    assert sid2 != sid
    latest = client(registry).get_latest_version("fixture-value")
    assert (latest.schema_id, latest.version) == (sid2, 2)
    assert "fixture-value" in client(registry).get_subjects()


def test_raw_wire_answers(registry):
    """The JSON bodies the proxy's C client parses, as this registry sends
    them (schemaType absent for Avro)."""
    sid = client(registry).register_schema("raw-value", Schema(SCHEMA, "AVRO"))
    st, body = registry.get("/schemas/ids/%d" % sid)
    assert st == 200
    doc = json.loads(body)
    assert json.loads(doc["schema"]) == json.loads(SCHEMA)
    assert doc.get("schemaType", "AVRO") == "AVRO"
    st, body = registry.get("/subjects/raw-value/versions/latest")
    assert st == 200
    doc = json.loads(body)
    assert (doc["id"], doc["subject"], doc["version"]) == (sid, "raw-value", 1)
    st, body = registry.get("/subjects/nope/versions/latest")
    assert st == 404 and json.loads(body)["error_code"] == 40401


def test_error_codes(registry):
    c = client(registry)
    c.register_schema("errors-value", Schema(SCHEMA, "AVRO"))
    assert error_of(lambda: c.get_latest_version("no-such-subject")) == (
        404, 40401)
    assert error_of(lambda: c.get_version("errors-value", 99)) == (404, 40402)
    assert error_of(lambda: c.get_schema(987654)) == (404, 40403)
    code = error_of(lambda: c.register_schema(
        "errors-value", Schema("{not avro", "AVRO")))
    assert code[0] == 422 and code[1] in (42201, 422)


def test_restart_keeps_ids_on_the_same_port(registry):
    sid = client(registry).register_schema("restart-value",
                                           Schema(SCHEMA, "AVRO"))
    url = registry.url
    registry.stop()
    with pytest.raises(ConnectionRefusedError):
        registry.get("/schemas/ids/%d" % sid)
    registry.start()
    assert registry.url == url
    got = client(registry).get_schema(sid)
    assert json.loads(got.schema_str) == json.loads(SCHEMA)
    assert registry.started_in < 30
    assert registry.rss_kib() < 600 * 1024
