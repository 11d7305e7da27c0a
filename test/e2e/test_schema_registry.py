"""Schema Registry topics for JSON clients (docs/api.md "Schema Registry
topics"), against the real broker and a real registry (Apicurio, Confluent
API): JSON produced through the proxy is Avro in the Confluent wire format
that confluent-kafka's Avro deserializer reads; Avro written by its
serializer is consumed as JSON; schemas chosen by subject, version or id;
values that do not match; unknown schemas; the registry stopped mid-stream;
and the wrapper schemas registered at startup."""

import io
import json
import struct
import time
import uuid

import fastavro
import pytest
import websocket
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import (AvroDeserializer,
                                                  AvroSerializer)
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import assert_json_error, read_assigned
from registry import registry  # noqa: F401  (the fixture)
from test_consume import new_topic
from wsraw import WsRaw

READING = {"type": "record", "name": "Reading", "namespace": "kwp.t",
           "fields": [{"name": "sensor", "type": "string"},
                      {"name": "value", "type": "double"},
                      {"name": "tags", "type": {"type": "array",
                                                "items": "string"},
                       "default": []}]}
READING2 = dict(READING, fields=READING["fields"] + [
    {"name": "unit", "type": ["null", "string"], "default": None}])


@pytest.fixture(scope="module")
def srv(proxy_mod, kafka, registry):  # noqa: F811
    return proxy_mod(env={"WSPROXY_SCHEMA_REGISTRY_URL": registry.url})


@pytest.fixture(autouse=True)
def _alive(request):
    yield
    if "srv" in request.fixturenames:
        request.getfixturevalue("srv").assert_alive()


def sr(registry):  # noqa: F811
    return SchemaRegistryClient({"url": registry.url})


def register(registry, subject, schema):  # noqa: F811
    return sr(registry).register_schema(subject, Schema(json.dumps(schema),
                                                        "AVRO"))


def topic_with_schema(kafka, registry, schema=READING):  # noqa: F811
    t = new_topic(kafka, 1)
    sid = register(registry, t + "-value", schema)
    return t, sid


def ws_in(srv, topic, **q):
    q.setdefault("clientId", "sr-in")
    q.setdefault("valType", "avro_registry")
    query = "&".join("%s=%s" % kv for kv in q.items())
    return websocket.create_connection(
        srv.ws_url("/socket/in?topic=%s&%s" % (topic, query)), timeout=30)


def ws_out(srv, topic, **q):
    q.setdefault("clientId", "sr-out-" + uuid.uuid4().hex[:6])
    q.setdefault("groupId", "g-" + uuid.uuid4().hex[:10])
    q.setdefault("valType", "avro_registry")
    query = "&".join("%s=%s" % kv for kv in q.items())
    return websocket.create_connection(
        srv.ws_url("/socket/out?topic=%s&%s" % (topic, query)), timeout=30)


def send(ws, value, key=None, mid=None):
    msg = {"value": {"value": value}}
    if key is not None:
        msg["key"] = {"value": key}
    if mid is not None:
        msg["messageId"] = mid
    ws.send(json.dumps(msg))
    return json.loads(ws.recv())


def avro_read(registry, topic, msgs, field=MessageField.VALUE):  # noqa: F811
    d = AvroDeserializer(sr(registry))
    return [d(m.value() if field == MessageField.VALUE else m.key(),
              SerializationContext(topic, field)) for m in msgs]


def upgrade(srv, path):
    c = WsRaw(srv.port, timeout=20)
    return c.handshake(path, expect=None), c


# -- produce -------------------------------------------------------------------

def test_json_in_avro_out_read_by_confluent_deserializer(srv, kafka,
                                                         registry):  # noqa: F811
    t, sid = topic_with_schema(kafka, registry)
    ksid = register(registry, t + "-key", {"type": "string"})
    ws = ws_in(srv, t, keyType="avro_registry")
    r = send(ws, {"sensor": "s1", "value": 1.5, "tags": ["a"]}, key="k1",
             mid="m1")
    assert "error" not in r and r["offset"] == 0, r
    r = send(ws, {"sensor": "s2", "value": -2})  # default for tags, int->double
    assert r["offset"] == 1, r
    ws.close()
    got = read_assigned(kafka.bootstrap, t, 2)
    assert got[0].value()[:5] == b"\x00" + struct.pack(">i", sid)
    assert got[0].key() == b"\x00" + struct.pack(">i", ksid) + b"\x04k1"
    assert avro_read(registry, t, got) == [
        {"sensor": "s1", "value": 1.5, "tags": ["a"]},
        {"sensor": "s2", "value": -2.0, "tags": []}]


def test_a_value_that_does_not_match_gets_an_error_naming_the_field(
        srv, kafka, registry):  # noqa: F811
    t, _ = topic_with_schema(kafka, registry)
    ws = ws_in(srv, t)
    r = send(ws, {"sensor": 5, "value": 1.0}, mid="bad")
    assert r["error"] == "invalid_value", r
    assert "'sensor'" in r["message"] and "string" in r["message"], r
    assert r["clientMessageId"] == "bad"
    r = send(ws, {"sensor": "x", "value": 1.0, "extra": 1})
    assert r["error"] == "invalid_value" and "'extra'" in r["message"], r
    r = send(ws, {"value": 1.0})
    assert r["error"] == "invalid_value" and "'sensor'" in r["message"], r
    r = send(ws, {"sensor": "ok", "value": 3.0})  # the socket keeps serving
    assert "error" not in r and r["offset"] == 0, r
    ws.close()


def test_schema_by_version_and_by_id(srv, kafka, registry):  # noqa: F811
    t, v1 = topic_with_schema(kafka, registry)
    v2 = register(registry, t + "-value", READING2)
    assert v2 != v1
    for q, want_id in [({}, v2), ({"valSchemaVersion": "1"}, v1),
                       ({"valSchemaId": str(v1)}, v1),
                       ({"valSubject": t + "-value",
                         "valSchemaVersion": "latest"}, v2)]:
        ws = ws_in(srv, t, **q)
        r = send(ws, {"sensor": "s", "value": 1.0})
        assert "error" not in r, (q, r)
        ws.close()
        m = read_assigned(kafka.bootstrap, t, 1, start=r["offset"])[0]
        assert m.value()[1:5] == struct.pack(">i", want_id), q


@pytest.mark.parametrize("query,status,message", [
    ("valType=avro_registry&valSubject=nobody-value", 400,
     "Schema registry: "),
    ("valType=avro_registry&valSchemaId=987654", 400, "Schema registry: "),
    ("valType=avro_registry&valSchemaVersion=99", 400, "Schema registry: "),
    ("valType=string&valSchemaId=1", 400,
     "Request param 'valSchemaId' needs valType=avro_registry."),
    ("valType=avro_registry&valSchemaId=1&valSchemaVersion=2", 400,
     "Request param 'valSchemaId' names the schema alone: leave out "
     "'valSchemaVersion'."),
    ("valType=avro_registry&valSchemaVersion=x", 400,
     "Request param 'valSchemaVersion' must be 'latest' or an integer from 1 "
     "to 2147483647, got 'x'."),
    ("valType=avro_registry&socketPayload=avro", 400,
     "Format type 'avro_registry' needs socketPayload=json (on an Avro "
     "socket, use 'avro' for the framed bytes)."),
], ids=["unknown-subject", "unknown-id", "unknown-version", "not-registry",
        "id-and-version", "bad-version", "avro-socket"])
def test_upgrade_errors(srv, kafka, registry, query, status,
                        message):  # noqa: F811
    t, _ = topic_with_schema(kafka, registry)
    r, c = upgrade(srv, "/socket/in?clientId=c&topic=%s&%s" % (t, query))
    with c:
        msg = assert_json_error(r.status, r.headers, r.body, status)
        assert msg.startswith(message), msg


def test_avro_registry_without_a_registry_is_400(proxy_mod, kafka):
    p = proxy_mod()
    t = new_topic(kafka, 1)
    for path in ["/socket/in?clientId=c&topic=%s&valType=avro_registry",
                 "/socket/out?clientId=c&topic=%s&keyType=avro_registry"]:
        r, c = upgrade(p, path % t)
        with c:
            assert_json_error(
                r.status, r.headers, r.body, 400,
                "Format type 'avro_registry' needs a schema registry "
                "(kafka.ws.proxy.kafka-client.schema-registry.url).")


# -- consume -------------------------------------------------------------------

def test_avro_written_by_confluent_serializer_is_consumed_as_json(
        srv, kafka, registry):  # noqa: F811
    t, sid = topic_with_schema(kafka, registry)
    ser = AvroSerializer(sr(registry), json.dumps(READING2),
                         conf={"auto.register.schemas": True})
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    vals = [{"sensor": "a", "value": 0.1, "tags": [], "unit": "C"},
            {"sensor": "b\u00e9", "value": 1e300, "tags": ["x", "y"],
             "unit": None}]
    for v in vals:
        p.produce(t, value=ser(v, SerializationContext(t,
                                                       MessageField.VALUE)))
    p.produce(t, value=b"\x00" + struct.pack(">i", 987654) + b"\x02")
    p.produce(t, value=b"plain text")
    p.produce(t, value=None)
    assert p.flush(30) == 0
    ws = ws_out(srv, t)
    recs = [json.loads(ws.recv()) for _ in range(5)]
    ws.close()
    v2 = sr(registry).get_latest_version(t + "-value").schema_id
    assert recs[0]["value"] == {"value": {"sensor": "a", "value": 0.1,
                                          "tags": [], "unit": {"string": "C"}},
                                "format": "avro_registry", "schemaId": v2}
    assert recs[1]["value"]["value"]["unit"] is None
    assert recs[1]["value"]["value"]["sensor"] == "b\u00e9"
    for r in recs[:2]:
        assert "error" not in r, r
    assert recs[2]["error"] == "invalid_value", recs[2]
    assert "schema 987654" in recs[2]["message"], recs[2]
    assert recs[2]["value"]["format"] == "bytearray"
    assert recs[3]["error"] == "invalid_value"
    assert "wire format" in recs[3]["message"]
    assert recs[4]["value"]["value"] is None and "error" not in recs[4]


def test_round_trip_through_the_proxy(srv, kafka, registry):  # noqa: F811
    t, sid = topic_with_schema(kafka, registry, READING2)
    ws = ws_in(srv, t)
    vals = [{"sensor": "r%d" % i, "value": i / 4, "tags": ["t"] * i,
             "unit": {"string": "K"} if i % 2 else None} for i in range(5)]
    for v in vals:
        assert "error" not in send(ws, v)
    ws.close()
    out = ws_out(srv, t)
    got = [json.loads(out.recv())["value"]["value"] for _ in range(5)]
    out.close()
    for v, g in zip(vals, got):
        assert g == dict(v, value=float(v["value"])), (v, g)


# -- the registry stopped mid-stream --------------------------------------------

def test_registry_stopped_mid_stream(srv, kafka, registry):  # noqa: F811
    t, sid = topic_with_schema(kafka, registry)
    other = new_topic(kafka, 1)
    ws = ws_in(srv, t)
    assert "error" not in send(ws, {"sensor": "a", "value": 1.0})
    out = ws_out(srv, t)
    assert json.loads(out.recv())["value"]["schemaId"] == sid
    # a schema the proxy has not seen yet (the registry gives the same
    # content the same id, whatever the subject)
    fresh = dict(READING2, name="Reading" + uuid.uuid4().hex[:8])
    sid2 = register(registry, other + "-value", fresh)
    raw = io.BytesIO()
    fastavro.schemaless_writer(raw, fastavro.parse_schema(fresh),
                               {"sensor": "z", "value": 2.0, "tags": [],
                                "unit": None})
    registry.stop()
    try:
        # open sockets keep serving what is cached
        assert "error" not in send(ws, {"sensor": "b", "value": 2.0})
        assert json.loads(out.recv())["value"]["value"]["sensor"] == "b"
        # a new socket on an uncached subject: 503, not a hang
        t0 = time.monotonic()
        r, c = upgrade(srv, "/socket/in?clientId=c&topic=%s&"
                            "valType=avro_registry" % other)
        with c:
            assert_json_error(r.status, r.headers, r.body, 503)
        assert time.monotonic() - t0 < 8
        # a record whose schema cannot be fetched: an error, then the rest
        p = Producer({"bootstrap.servers": kafka.bootstrap})
        p.produce(t, value=b"\x00" + struct.pack(">i", sid2) + raw.getvalue())
        assert p.flush(30) == 0
        assert "error" not in send(ws, {"sensor": "c", "value": 3.0})
        rec = json.loads(out.recv())
        assert rec["error"] == "invalid_value", rec
        assert "schema %d" % sid2 in rec["message"], rec
        assert json.loads(out.recv())["value"]["value"]["sensor"] == "c"
    finally:
        registry.start()
    ws.close()
    out.close()
    ws = ws_in(srv, other)
    assert "error" not in send(ws, {"sensor": "d", "value": 4.0})
    ws.close()


def test_wrapper_schemas_registered_at_startup(srv, registry):  # noqa: F811
    c = sr(registry)
    for name in ["AvroProducerRecord", "AvroProducerResult",
                 "AvroConsumerRecord", "AvroCommit"]:
        v = c.get_latest_version("net.scalytica.kafka.wsproxy.avro." + name)
        assert json.loads(v.schema.schema_str)["name"] == name
