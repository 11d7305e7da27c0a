"""socketPayload=avro (docs/api.md "Avro payloads") against the real broker:
the wrapper schemas served at /schemas/avro/*, every union branch produced
and read back byte for byte with a plain Kafka consumer, every branch
consumed, Avro commits and a reconnect that resumes after them, and bad
frames of every kind followed by good ones on the same socket. Clients
encode and decode with fastavro."""

import io
import json
import struct
import time
import uuid

import fastavro
import pytest
import websocket
from confluent_kafka import Producer

from conftest import read_assigned, wait_until
from test_consume import committed, new_topic

NS = "net.scalytica.kafka.wsproxy.avro"
PATHS = ["producer/record", "producer/result", "consumer/record",
         "consumer/commit", "producer/commit"]

# The seed's documented schemas (seed 003, "Avro payload schemas"): a client
# written against them must keep working.
SEED_HEADERS = ["null", {"type": "array", "items": {
    "type": "record", "name": "KafkaMessageHeader", "fields": [
        {"name": "key", "type": "string"},
        {"name": "value", "type": "string"}]}}]
SEED_RECORD = {
    "type": "record", "name": "AvroProducerRecord", "namespace": NS,
    "fields": [
        {"name": "key", "type": ["null", "bytes", "string", "int", "long",
                                 "double", "float"], "default": None},
        {"name": "value", "type": ["bytes", "string", "int", "long",
                                   "double", "float"]},
        {"name": "headers", "type": SEED_HEADERS, "default": None},
        {"name": "clientMessageId", "type": ["null", "string"],
         "default": None}]}
SEED_RESULT = {
    "type": "record", "name": "AvroProducerResult", "namespace": NS,
    "fields": [{"name": "topic", "type": "string"},
               {"name": "partition", "type": "int"},
               {"name": "offset", "type": "long"},
               {"name": "timestamp", "type": "long"},
               {"name": "clientMessageId", "type": ["null", "string"],
                "default": None}]}
SEED_CONSUMER = {
    "type": "record", "name": "AvroConsumerRecord", "namespace": NS,
    "fields": [{"name": "wsProxyMessageId", "type": "string"},
               {"name": "topic", "type": "string"},
               {"name": "partition", "type": "int"},
               {"name": "offset", "type": "long"},
               {"name": "timestamp", "type": "long"},
               {"name": "key", "type": ["null", "bytes", "string", "int",
                                        "long", "double", "float"]},
               {"name": "value", "type": ["bytes", "string", "int", "long",
                                          "double", "float"]},
               {"name": "headers", "type": SEED_HEADERS}]}


@pytest.fixture(scope="module")
def srv(proxy_mod, kafka):
    return proxy_mod()


@pytest.fixture(scope="module")
def schemas(srv):
    out = {}
    for p in PATHS:
        st, hdrs, body = srv.get("/schemas/avro/" + p)
        assert st == 200, (p, st, body)
        assert hdrs["content-type"].startswith("application/json"), hdrs
        out[p] = fastavro.parse_schema(json.loads(body))
    return out


def enc(schema, obj):
    b = io.BytesIO()
    fastavro.schemaless_writer(b, schema, obj)
    return b.getvalue()


def dec(schema, data):
    return fastavro.schemaless_reader(io.BytesIO(data), schema)


class AvroIn:
    def __init__(self, srv, topic, **q):
        q.setdefault("clientId", "avro-in")
        query = "&".join("%s=%s" % kv for kv in q.items())
        self.ws = websocket.create_connection(srv.ws_url(
            "/socket/in?topic=%s&socketPayload=avro&%s" % (topic, query)),
            timeout=30)

    def send(self, data):
        self.ws.send_binary(data)

    def result(self, schema):
        op, data = self.ws.recv_data()
        assert op == websocket.ABNF.OPCODE_BINARY, (op, data)
        return dec(schema, data), data

    def close(self):
        self.ws.close()


class AvroOut:
    def __init__(self, srv, topic, **q):
        q.setdefault("clientId", "avro-out-" + uuid.uuid4().hex[:6])
        q.setdefault("groupId", "g-" + uuid.uuid4().hex[:10])
        self.group = q["groupId"]
        query = "&".join("%s=%s" % kv for kv in q.items())
        self.ws = websocket.create_connection(srv.ws_url(
            "/socket/out?topic=%s&socketPayload=avro&%s" % (topic, query)),
            timeout=30)

    def frames(self, n, schema, timeout=30):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            op, data = self.ws.recv_data()
            assert op == websocket.ABNF.OPCODE_BINARY, (op, data)
            out.append(dec(schema, data))
        return out

    def close(self):
        self.ws.close()


# -- the schema endpoints ------------------------------------------------------

def test_schema_endpoints_serve_the_wrapper_schemas(srv, schemas):
    assert schemas["producer/record"]["name"] == NS + ".AvroProducerRecord"
    assert schemas["producer/result"]["name"] == NS + ".AvroProducerResult"
    assert schemas["consumer/record"]["name"] == NS + ".AvroConsumerRecord"
    assert schemas["consumer/commit"]["name"] == NS + ".AvroCommit"
    assert schemas["producer/commit"] == schemas["consumer/commit"]
    # the seed's fields come first, as the seed has them
    for ours, seed in [("producer/result", SEED_RESULT),
                       ("consumer/record", SEED_CONSUMER)]:
        names = [f["name"] for f in schemas[ours]["fields"]]
        assert names[:len(seed["fields"])] == [f["name"]
                                               for f in seed["fields"]]
        assert names[len(seed["fields"]):] == ["error", "message"]
    st, _, body = srv.get("/schemas/avro/producer/nothing")
    assert st == 404, body


# -- produce -------------------------------------------------------------------

BRANCHES = [  # (what the client sends, the bytes Kafka stores)
    (b"\x00\xffraw", b"\x00\xffraw"),
    ("text \u00e9", "text \u00e9".encode()),
    (("int", -2), struct.pack(">i", -2)),
    (("long", 2 ** 40), struct.pack(">q", 2 ** 40)),
    (("double", 1.5), struct.pack(">d", 1.5)),
    (("float", -0.25), struct.pack(">f", -0.25)),
]


def test_every_branch_is_stored_as_its_kafka_serializer(srv, kafka, schemas):
    t = new_topic(kafka, 1)
    c = AvroIn(srv, t)
    sent = []
    for i, (k, kbytes) in enumerate(BRANCHES):
        v, vbytes = BRANCHES[-1 - i]
        c.send(enc(schemas["producer/record"], {
            "key": k, "value": v, "clientMessageId": "m%d" % i,
            "headers": [{"key": "h", "value": "v%d" % i}]}))
        sent.append((kbytes, vbytes))
    # no key, a tombstone (the null branch we added), seed schema writer
    c.send(enc(schemas["producer/record"], {"key": None, "value": None}))
    c.send(enc(parse_seed(SEED_RECORD), {"value": b"seed",
                                         "clientMessageId": "s"}))
    results = [c.result(schemas["producer/result"])[0] for _ in range(8)]
    for i, r in enumerate(results):
        assert r["error"] is None, r
        assert (r["topic"], r["partition"], r["offset"]) == (t, 0, i)
        assert r["timestamp"] > 1.6e12
    assert [r["clientMessageId"] for r in results] == \
        ["m%d" % i for i in range(6)] + [None, "s"]
    c.close()
    got = read_records(kafka, t, 8)
    for i, (kbytes, vbytes) in enumerate(sent):
        assert got[i].key() == kbytes and got[i].value() == vbytes, i
        assert got[i].headers() == [("h", b"v%d" % i)]
    assert got[6].key() is None and got[6].value() is None
    assert got[7].value() == b"seed"


def parse_seed(schema):
    return fastavro.parse_schema(json.loads(json.dumps(schema)))


def read_records(kafka, topic, n):
    got = read_assigned(kafka.bootstrap, topic, n)
    assert len(got) == n, len(got)
    return got


def test_results_decode_with_the_seed_schema(srv, kafka, schemas):
    t = new_topic(kafka, 1)
    c = AvroIn(srv, t)
    c.send(enc(schemas["producer/record"], {"value": "x",
                                            "clientMessageId": "id-1"}))
    r, raw = c.result(schemas["producer/result"])
    seed = dec(parse_seed(SEED_RESULT), raw)
    assert seed == {k: r[k] for k in seed}
    assert seed["clientMessageId"] == "id-1"
    c.close()


def test_bad_frames_get_error_results_and_the_socket_keeps_serving(
        srv, kafka, schemas):
    t = new_topic(kafka, 1)
    c = AvroIn(srv, t)
    good = enc(schemas["producer/record"], {"value": "ok"})
    bad_utf8 = b"\x00" + b"\x02" + b"\x04\xc3\x28" + b"\x00" + \
        b"\x02\x04id"   # key null, value string "\xc3(", id "id"
    too_many = enc(schemas["producer/record"], {
        "value": "v", "headers": [{"key": "k", "value": "v"}] * 65})
    cases = [
        (good[:-1] + b"", None),                 # truncated: see below
        (b"\x0e\x00", "invalid_message"),        # key union index 7
        (b"\x00\x00\x7f", "invalid_message"),    # bytes length past the end
        (good + b"\x00", "invalid_message"),     # trailing bytes
        (b"\x00\x00\x02", "invalid_message"),    # bytes length 1, 0 there
        (bad_utf8, "invalid_value"),
        (too_many, "invalid_headers"),
    ]
    # the good record cut short: the value's bytes end early
    cut = enc(schemas["producer/record"], {"value": "a long value"})[:6]
    cases[0] = (cut, "invalid_message")
    for data, _ in cases:
        c.send(data)
        c.send(good)
    c.ws.send("{\"value\": {\"value\": \"text frame\"}}")
    c.send(good)
    for i, (_, code) in enumerate(cases + [(None, "unsupported_frame")]):
        r, raw = c.result(schemas["producer/result"])
        assert r["error"] == code, (i, r)
        assert r["message"], r
        assert (r["partition"], r["offset"], r["timestamp"]) == (-1, -1, -1)
        assert r["topic"] == t
        # a reader of the seed's schema decodes it too
        dec(parse_seed(SEED_RESULT), raw)
        ok, _ = c.result(schemas["producer/result"])
        assert ok["error"] is None and ok["offset"] == i, ok
    c.close()
    # the error result of a readable record carries its clientMessageId
    c = AvroIn(srv, t)
    c.send(bad_utf8)
    r, _ = c.result(schemas["producer/result"])
    assert (r["error"], r["clientMessageId"]) == ("invalid_value", "id"), r
    assert "UTF-8" in r["message"]
    c.close()


def test_truncated_frame_message_names_the_field_and_byte(srv, kafka,
                                                          schemas):
    t = new_topic(kafka, 1)
    c = AvroIn(srv, t)
    c.send(b"\x00\x02\x20abc")  # value string of 16 bytes, 3 there
    r, _ = c.result(schemas["producer/result"])
    assert r["error"] == "invalid_message"
    assert r["message"] == ("not an AvroProducerRecord: a length runs past "
                            "the end of the message (field 'value', byte 3 "
                            "of 6)"), r["message"]
    c.close()


# -- consume -------------------------------------------------------------------

def kafka_produce(kafka, topic, records):
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    for r in records:
        p.produce(topic, **r)
    assert p.flush(30) == 0


CONSUME = [  # (keyType/valType, Kafka bytes, the union value read)
    ("bytearray", b"\x01\x02", b"\x01\x02"),
    ("avro", b"\x03", b"\x03"),
    ("string", "h\u00e9".encode(), "h\u00e9"),
    ("json", b'{"a":1}', '{"a":1}'),
    ("int", struct.pack(">i", -7), -7),
    ("short", struct.pack(">h", -300), -300),
    ("long", struct.pack(">q", -2 ** 50), -2 ** 50),
    ("double", struct.pack(">d", 2.5), 2.5),
    ("float", struct.pack(">f", 0.5), 0.5),
]


@pytest.mark.parametrize("fmt,raw,want", CONSUME, ids=[c[0] for c in CONSUME])
def test_consume_every_type(srv, kafka, schemas, fmt, raw, want):
    t = new_topic(kafka, 1)
    kafka_produce(kafka, t, [{"key": raw, "value": raw,
                              "headers": [("h", b"v")]}])
    out = AvroOut(srv, t, keyType=fmt, valType=fmt)
    r = out.frames(1, schemas["consumer/record"])[0]
    assert r["key"] == want and r["value"] == want, r
    assert r["error"] is None
    assert r["headers"] == [{"key": "h", "value": "v"}]
    assert (r["topic"], r["partition"], r["offset"]) == (t, 0, 0)
    assert r["wsProxyMessageId"] == "%s-0-0-%d" % (t, r["timestamp"])
    out.close()


def test_consume_no_key_type_tombstone_and_misfits(srv, kafka, schemas):
    t = new_topic(kafka, 1)
    kafka_produce(kafka, t, [
        {"key": b"\xff\x00", "value": b"v"},       # no keyType: bytes
        {"value": None},                             # tombstone, no key
        {"value": b"\x00\x01\x02"},                  # not an int
        {"value": struct.pack(">i", 5), "headers": [("bin", b"\xff"),
                                                      ("nul", None)]},
    ])
    out = AvroOut(srv, t, valType="int")
    recs = out.frames(4, schemas["consumer/record"])
    assert recs[0]["key"] == b"\xff\x00"
    assert recs[0]["error"] == "invalid_value"  # b"v" is no int
    assert recs[0]["value"] == b"v"
    assert recs[1]["key"] is None and recs[1]["value"] is None
    assert recs[1]["error"] is None
    assert recs[2]["value"] == b"\x00\x01\x02"
    assert recs[2]["error"] == "invalid_value", recs[2]
    assert "int" in recs[2]["message"]
    assert recs[3]["value"] == 5
    assert recs[3]["error"] == "invalid_headers"
    assert recs[3]["headers"] == [{"key": "bin", "value": "/w=="},
                                  {"key": "nul", "value": ""}]
    out.close()


def test_consumed_records_decode_with_the_seed_schema(srv, kafka, schemas):
    t = new_topic(kafka, 1)
    kafka_produce(kafka, t, [{"key": b"k", "value": b"v"}])
    out = AvroOut(srv, t, keyType="string")
    out.ws.settimeout(30)
    op, raw = out.ws.recv_data()
    seed = dec(parse_seed(SEED_CONSUMER), raw)
    assert (seed["key"], seed["value"], seed["offset"]) == ("k", "v", 0)
    out.close()


def test_batch_size_sends_one_record_per_frame(srv, kafka, schemas):
    t = new_topic(kafka, 1)
    kafka_produce(kafka, t, [{"value": b"%d" % i} for i in range(5)])
    out = AvroOut(srv, t, batchSize=3)
    recs = out.frames(5, schemas["consumer/record"])
    assert [r["value"] for r in recs] == ["0", "1", "2", "3", "4"]
    out.close()


def test_avro_commits_and_a_reconnect_resumes_after_them(srv, kafka,
                                                         schemas):
    t = new_topic(kafka, 1)
    kafka_produce(kafka, t, [{"value": b"%d" % i} for i in range(6)])
    g = "ac-" + uuid.uuid4().hex[:10]
    out = AvroOut(srv, t, groupId=g, autoCommit="false")
    recs = out.frames(6, schemas["consumer/record"])
    commit = schemas["consumer/commit"]
    out.ws.send_binary(enc(commit, {"wsProxyMessageId":
                                    recs[3]["wsProxyMessageId"]}))
    # errors: an id already covered, garbage, a text frame
    out.ws.send_binary(enc(commit, {"wsProxyMessageId":
                                    recs[1]["wsProxyMessageId"]}))
    out.ws.send_binary(b"\x7f")
    out.ws.send("{\"wsProxyMessageId\": \"x\"}")
    errs = out.frames(3, schemas["consumer/record"])
    assert [e["error"] for e in errs] == ["unknown_message_id",
                                          "invalid_commit",
                                          "unsupported_frame"], errs
    assert errs[0]["wsProxyMessageId"] == recs[1]["wsProxyMessageId"]
    for e in errs:
        assert e["topic"] == "" and e["partition"] == -1 and e["message"]
    assert wait_until(lambda: committed(kafka, g, t) == {0: 4}, 10)
    out.close()
    out = AvroOut(srv, t, groupId=g, autoCommit="false")
    again = out.frames(2, schemas["consumer/record"])
    assert [r["offset"] for r in again] == [4, 5]
    out.close()


# -- the produce path's rules hold for Avro sockets ----------------------------

def test_transactional_avro_socket(proxy, kafka, schemas):
    from conftest import consume_all
    p = proxy(env={"WSPROXY_PRODUCER_SESSIONS_ENABLED": "true",
                   "WSPROXY_PRODUCER_EXACTLY_ONCE_ENABLED": "true",
                   "WSPROXY_PRODUCER_TRANSACTION_MAX_MESSAGES": "3"})
    t = new_topic(kafka, 1)
    c = AvroIn(p, t, clientId="avro-tx", instanceId="i1",
               transactional="true")
    for i in range(7):
        c.send(enc(schemas["producer/record"], {"value": "tx%d" % i,
                                                "clientMessageId": str(i)}))
    res = [c.result(schemas["producer/result"])[0] for _ in range(7)]
    c.close()
    assert [r["clientMessageId"] for r in res] == [str(i) for i in range(7)]
    assert all(r["error"] is None for r in res), res
    got = consume_all(kafka.bootstrap, t, 7, 20, isolation="read_committed")
    assert [m.value() for m in got] == [b"tx%d" % i for i in range(7)]


def test_rate_limited_avro_consumer(srv, kafka, schemas):
    t = new_topic(kafka, 1)
    kafka_produce(kafka, t, [{"value": b"%d" % i} for i in range(30)])
    out = AvroOut(srv, t, rate=10)
    t0 = time.monotonic()
    recs = out.frames(30, schemas["consumer/record"])
    took = time.monotonic() - t0
    out.close()
    assert [r["offset"] for r in recs] == list(range(30))
    # a burst of one second's worth, then 10 per second
    assert took > 1.5, took
