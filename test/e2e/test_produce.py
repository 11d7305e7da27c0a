"""Produce over WebSocket, GET /socket/in (docs/api.md "Produce"), against
the real broker: query validation, results in order after the ack, the
records in Kafka, error results that keep the socket open."""

import base64
import json
import struct
import time
import uuid
from urllib.parse import quote

import confluent_kafka
import pytest
import websocket
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import assert_json_error, read_assigned
from wsraw import OP_TEXT, WsRaw, http_request_bytes, new_key


@pytest.fixture(scope="module")
def srv(proxy_mod, kafka):
    return proxy_mod()


@pytest.fixture(autouse=True)
def _alive(request):
    yield
    if "srv" in request.fixturenames:
        request.getfixturevalue("srv").assert_alive()


@pytest.fixture(scope="module")
def topic(kafka):
    return new_topic(kafka, partitions=1)


def new_topic(kafka, partitions=1, config=None):
    name = "produce-" + uuid.uuid4().hex[:12]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions,
                                  replication_factor=1,
                                  config=config or {})])[name].result(30)
    # wait until the metadata shows it (the proxy caches metadata)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=5)
        if md.topics[name].error is None and md.topics[name].partitions:
            break
        time.sleep(0.1)
    return name


def read_records(kafka, topic, n, partition=0, start=0, timeout=20,
                 partitions=None):
    return read_assigned(kafka.bootstrap, topic, n,
                         partitions or [partition], start, timeout)


def upgrade(srv, query):
    c = WsRaw(srv.port)
    c.send_raw(http_request_bytes("GET", "/socket/in" + query, [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]))
    r = c.read_response(body=None)
    return r, c


def open_ws(srv, topic, **params):
    q = {"clientId": "e2e-client", "topic": topic}
    q.update(params)
    qs = "&".join("%s=%s" % (k, quote(str(v), safe="")) for k, v in q.items())
    return websocket.create_connection(srv.ws_url("/socket/in?" + qs),
                                       timeout=20)


def result(ws):
    op, data = ws.recv_data()
    assert op == websocket.ABNF.OPCODE_TEXT, "result not a text frame"
    return json.loads(data)


# -- validation before the upgrade --------------------------------------------

BAD_TOPIC = "Request param 'topic' is not a valid Kafka topic name: "
BAD_TOPIC_CHAR = (BAD_TOPIC + "it contains a character other than ASCII "
                  "alphanumerics, '.', '_' and '-'.")
BAD_TOPIC_DOTS = BAD_TOPIC + "'.' and '..' are not allowed."
BAD_TOPIC_LONG = BAD_TOPIC + "it is longer than 249 characters."

@pytest.mark.parametrize("query,message", [
    ("", "Request param 'clientId' is missing."),
    ("?topic=t", "Request param 'clientId' is missing."),
    ("?clientId=&topic=t", "Request param 'clientId' is missing."),
    ("?clientId=c", "Request param 'topic' is missing."),
    ("?clientId=c&topic=t&socketPayload=xml", "'xml' is not a valid socket payload"),
    ("?clientId=c&topic=t&keyType=foo", "'foo' is not a valid format type"),
    ("?clientId=c&topic=t&valType=bar", "'bar' is not a valid format type"),
    ("?clientId=c&topic=t&transactional=maybe", "'maybe' is not a valid boolean value"),
    ("?clientId=c&topic=t&transactional=true",
     "Unable to provide transactional producer. Server is not configured to "
     "allow producer transactions."),
    ("?clientId=%zz&topic=t", "Request param 'clientId' is malformed or too long."),
    ("?clientId=a%00b&topic=t", "Request param 'clientId' is malformed or too long."),
    ("?clientId=" + "c" * 256 + "&topic=t",
     "Request param 'clientId' is malformed or too long."),
    # not UTF-8: the 400 body was {} (the message could not be JSON)
    ("?clientId=c&topic=%FF", "Request param 'topic' is malformed or too long."),
    ("?clientId=c&topic=t&keyType=%C3", "Request param 'keyType' is malformed or too long."),
    ("?clientId=%ED%A0%80&topic=t", "Request param 'clientId' is malformed or too long."),
    # names Kafka refuses: the result frame carried them unescaped
    ("?clientId=c&topic=a%22b", BAD_TOPIC_CHAR),
    ("?clientId=c&topic=a%5Cb", BAD_TOPIC_CHAR),
    ("?clientId=c&topic=a%0Ab", BAD_TOPIC_CHAR),
    ("?clientId=c&topic=a%2Fb", BAD_TOPIC_CHAR),
    ("?clientId=c&topic=%C3%A9t%C3%A9", BAD_TOPIC_CHAR),
    ("?clientId=c&topic=..", BAD_TOPIC_DOTS),
    ("?clientId=c&topic=" + "t" * 250, BAD_TOPIC_LONG),
], ids=["nothing", "no-client", "empty-client", "no-topic", "bad-payload",
        "bad-keytype", "bad-valtype", "bad-bool", "transactional",
        "bad-percent", "nul", "too-long", "not-utf8", "cut-utf8", "surrogate",
        "topic-quote", "topic-backslash", "topic-newline", "topic-slash",
        "topic-non-ascii", "topic-dots", "topic-250"])
def test_query_validation_400(srv, query, message):
    r, c = upgrade(srv, query)
    with c:
        assert_json_error(r.status, r.headers, r.body, 400, message)


def test_unknown_topic_400(srv):
    t = "missing-" + uuid.uuid4().hex[:8]
    r, c = upgrade(srv, "?clientId=c&topic=" + t)
    with c:
        assert_json_error(r.status, r.headers, r.body, 400,
                          "Topic %s does not exist" % t)


@pytest.mark.parametrize("reserved", ["_wsproxy.session.state",
                                      "_wsproxy.dynamic.configs",
                                      "__consumer_offsets",
                                      "__transaction_state"])
def test_internal_topics_cannot_be_written(srv, reserved):
    """Before, /socket/in wrote to the session state topic: a forged claim
    locked a consumer group out for good, forged heartbeats stopped a node
    from starting ("another node uses server-id ...")."""
    r, c = upgrade(srv, "?clientId=c&topic=" + reserved)
    with c:
        assert_json_error(r.status, r.headers, r.body, 400,
                          "Topic %s is internal to Kafka or to the proxy and "
                          "cannot be written to" % reserved)


def test_format_types_case_insensitive(srv, topic):
    r, c = upgrade(srv, "?clientId=c&topic=%s&keyType=STRING&valType=Json" % topic)
    with c:
        assert r.status == 101, r


def test_kafka_unreachable_503(proxy):
    from conftest import closed_port
    p = proxy(bootstrap="127.0.0.1:%d" % closed_port(),
              env={"WSPROXY_KAFKA_METADATA_TIMEOUT": "2s"})
    r, c = upgrade(p, "?clientId=c&topic=t")
    with c:
        assert_json_error(r.status, r.headers, r.body, 503,
                          prefix="Kafka cluster is unreachable")


# -- producing -----------------------------------------------------------------

def test_produce_strings_in_order(srv, kafka):
    t = new_topic(kafka)
    ws = open_ws(srv, t, keyType="string")
    try:
        n = 50
        t0 = int(time.time() * 1000)
        for i in range(n):
            ws.send(json.dumps({
                "headers": [{"key": "h", "value": "v%d" % i}],
                "key": {"value": "k%d" % i},
                "value": {"value": "value %d" % i},
                "messageId": "id-%d" % i}))
        results = [result(ws) for _ in range(n)]
        t1 = int(time.time() * 1000)
    finally:
        ws.close()
    for i, r in enumerate(results):
        assert "error" not in r, r
        assert r["messageId"] == "id-%d" % i and r["clientMessageId"] == "id-%d" % i
        assert r["topic"] == t and r["partition"] == 0 and r["offset"] == i, r
        # CreateTime: the wall clock when the proxy took the frame (read
        # once per loop tick, so within the send..ack window, to the ms)
        assert isinstance(r["timestamp"], int) and t0 - 1 <= r["timestamp"] <= t1 + 1, \
            (t0, r["timestamp"], t1)
    recs = read_records(kafka, t, n)
    assert [m.timestamp() for m in recs] == \
        [(confluent_kafka.TIMESTAMP_CREATE_TIME, r["timestamp"]) for r in results]
    assert [(m.key(), m.value()) for m in recs] == \
        [(b"k%d" % i, b"value %d" % i) for i in range(n)]
    assert recs[7].headers() == [("h", b"v7")]


def test_log_append_time_topic_gives_the_brokers_time(srv, kafka):
    """On a LogAppendTime topic the result carries the time the broker
    stored the record (what a consumer reads), not the proxy's."""
    t = new_topic(kafka, config={"message.timestamp.type": "LogAppendTime"})
    ws = open_ws(srv, t)
    try:
        ws.send(json.dumps({"value": {"value": "a"}}))
        r = result(ws)
    finally:
        ws.close()
    assert "error" not in r, r
    rec, = read_records(kafka, t, 1)
    assert rec.timestamp() == (confluent_kafka.TIMESTAMP_LOG_APPEND_TIME,
                               r["timestamp"])


def test_message_id_any_json_and_null(srv, topic):
    ws = open_ws(srv, topic)
    try:
        ws.send(json.dumps({"value": {"value": "a"}, "messageId": {"x": [1, 2]}}))
        r = result(ws)
        assert r["messageId"] == {"x": [1, 2]} and r["clientMessageId"] == {"x": [1, 2]}
        ws.send(json.dumps({"value": {"value": "b"}}))
        r = result(ws)
        assert r["messageId"] is None and r["clientMessageId"] is None
        assert "error" not in r
    finally:
        ws.close()


def java_murmur2(data):
    """Kafka's Utils.murmur2 (the Java producer's default partitioner for
    keyed records), as an unsigned 32-bit value."""
    m, h = 0x5bd1e995, (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[4 * n4:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    return h ^ (h >> 15)


def test_java_murmur2_matches_kafkas_own_test_vectors():
    # Kafka's UtilsTest.testMurmur2, as signed Java ints
    for text, want in [(b"21", -973932308), (b"foobar", -790332482),
                       (b"a-little-bit-long-string", -985981536),
                       (b"a-little-bit-longer-string", -1486304829),
                       (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                        -58897971), (b"abc", 479470107)]:
        assert java_murmur2(text) == want & 0xffffffff, text


def test_keyed_records_go_to_the_java_producers_partition(srv, kafka):
    """A key lands where the reference's Java producer puts it (murmur2 of the
    serialized key, positive, modulo the partition count), so switching from
    the reference keeps every key on its partition. Before, librdkafka's
    CRC32 partitioner put most keys elsewhere."""
    t = new_topic(kafka, partitions=6)
    keys = ["key-%d" % i for i in range(24)] + ["", "é", "a longer key 1234"]
    ws = open_ws(srv, t, keyType="string")
    try:
        for k in keys:
            ws.send(json.dumps({"key": {"value": k}, "value": {"value": "v"}}))
        got = [result(ws)["partition"] for _ in keys]
        ws.close()
        ws = open_ws(srv, t, keyType="long")
        for n in (0, 1, -1, 2 ** 40):
            ws.send(json.dumps({"key": {"value": n}, "value": {"value": "v"}}))
        got_long = [result(ws)["partition"] for _ in range(4)]
    finally:
        ws.close()
    want = [(java_murmur2(k.encode()) & 0x7fffffff) % 6 for k in keys]
    assert got == want
    want_long = [(java_murmur2(struct.pack(">q", n)) & 0x7fffffff) % 6
                 for n in (0, 1, -1, 2 ** 40)]
    assert got_long == want_long


@pytest.mark.parametrize("valtype,value,raw", [
    ("json", {"a": [1, 2, {"b": None}]}, b'{"a":[1,2,{"b":null}]}'),
    # numbers keep their text (jansson once stored 0.1 as 0.10000000000000001)
    ("json", {"p": 0.1, "q": 1e-07, "r": 12345678901234567890123},
     b'{"p":0.1,"q":1e-07,"r":12345678901234567890123}'),
    ("json", "caf\u00e9 \"q\"", b'"caf\\u00e9 \\"q\\""'),
    ("string", "héllo", "héllo".encode()),
    ("int", 42, struct.pack(">i", 42)),
    ("int", -2147483648, struct.pack(">i", -2147483648)),
    ("short", -2, struct.pack(">h", -2)),
    ("long", 2 ** 62, struct.pack(">q", 2 ** 62)),
    ("double", 1.5, struct.pack(">d", 1.5)),
    ("float", 0.25, struct.pack(">f", 0.25)),
    ("bytearray", base64.b64encode(b"\x00\xff\x10").decode(), b"\x00\xff\x10"),
    ("byte_array", base64.b64encode(b"raw").decode(), b"raw"),
])
def test_value_types_serialized(srv, kafka, valtype, value, raw):
    t = new_topic(kafka)
    ws = open_ws(srv, t, valType=valtype)
    try:
        ws.send(json.dumps({"value": {"value": value}, "messageId": 1}))
        r = result(ws)
        assert "error" not in r, r
    finally:
        ws.close()
    recs = read_records(kafka, t, 1)
    assert len(recs) == 1 and recs[0].value() == raw


@pytest.mark.parametrize("frame,error", [
    ("this is not json", "invalid_json"),
    ("[1,2]", "invalid_message"),
    ('{"key": {"value": "k"}}', "invalid_key"),  # key without keyType (checked before value?)
    ('{"messageId": "m"}', "invalid_message"),
    ('{"value": {"value": 1}, "headers": "nope"}', "invalid_headers"),
    ('{"value": {"value": 1}, "headers": [{"key": 1, "value": "v"}]}', "invalid_headers"),
    ('{"value": {"value": "s", "format": "nosuchformat"}}', "invalid_value"),
])
def test_error_results_keep_socket_open(srv, topic, frame, error):
    ws = open_ws(srv, topic, valType="json")
    try:
        ws.send(frame)
        r = result(ws)
        assert "error" in r, r
        if error == "invalid_key":
            assert r["error"] in ("invalid_key", "invalid_message"), r
        else:
            assert r["error"] == error, r
        assert isinstance(r.get("message"), str) and r["message"]
        # still open and working
        ws.send(json.dumps({"value": {"value": "after"}, "messageId": "ok"}))
        r2 = result(ws)
        assert r2.get("messageId") == "ok" and "error" not in r2, r2
    finally:
        ws.close()


def test_deeply_nested_json(srv, kafka):
    """The reader is recursive: 2048 levels (the message object and its
    "value" object included) are stored as sent, deeper is an
    invalid_json result; the worker (its stack) and the socket survive both."""
    t = new_topic(kafka)
    ok = "[" * 2045 + "{\"a\":0.1}" + "]" * 2045
    deep = "[" * 100000 + "]" * 100000
    ws = open_ws(srv, t, valType="json")
    try:
        ws.send('{"value": {"value": %s}, "messageId": 1}' % ok)
        r = result(ws)
        assert "error" not in r, r
        ws.send('{"value": {"value": %s}, "messageId": 2}' % deep)
        r = result(ws)
        assert r["error"] == "invalid_json" and "depth" in r["message"], r
        ws.send(json.dumps({"value": {"value": "after"}, "messageId": 3}))
        r = result(ws)
        assert r["messageId"] == 3 and "error" not in r, r
    finally:
        ws.close()
    recs = read_records(kafka, t, 2)
    assert recs[0].value() == ok.encode()


def test_value_type_mismatch(srv, topic):
    ws = open_ws(srv, topic, valType="int", keyType="long")
    try:
        cases = [
            ({"value": {"value": "abc"}, "messageId": 1}, "invalid_value"),
            ({"value": {"value": 2 ** 40}, "messageId": 2}, "invalid_value"),
            ({"value": {"value": 1}, "key": {"value": "x"}, "messageId": 3}, "invalid_key"),
            ({"value": {"value": 1}, "key": {"value": 5}, "messageId": 4}, None),
        ]
        for msg, _ in cases:
            ws.send(json.dumps(msg))
        for msg, err in cases:
            r = result(ws)
            assert r["messageId"] == msg["messageId"], "results out of order"
            assert r.get("error") == err, r
    finally:
        ws.close()


def test_key_without_keytype_is_error(srv, topic):
    ws = open_ws(srv, topic)
    try:
        ws.send(json.dumps({"key": {"value": "k"}, "value": {"value": "v"},
                            "messageId": "m"}))
        r = result(ws)
        assert r["error"] == "invalid_key", r
    finally:
        ws.close()


def test_binary_frame_unsupported(srv, topic):
    ws = open_ws(srv, topic)
    try:
        ws.send_binary(b'{"value": {"value": "x"}}')
        r = result(ws)
        assert r["error"] == "unsupported_frame", r
        ws.send(json.dumps({"value": {"value": "x"}, "messageId": 9}))
        assert "error" not in result(ws)
    finally:
        ws.close()


def test_mixed_errors_and_records_in_order(srv, kafka):
    t = new_topic(kafka)
    ws = open_ws(srv, t)
    try:
        frames = []
        for i in range(30):
            if i % 3 == 1:
                frames.append("garbage %d" % i)
            else:
                frames.append(json.dumps({"value": {"value": "v%d" % i},
                                          "messageId": i}))
        for f in frames:
            ws.send(f)
        results = [result(ws) for _ in frames]
    finally:
        ws.close()
    offset = 0
    for i, r in enumerate(results):
        if i % 3 == 1:
            assert r["error"] == "invalid_json", r
        else:
            assert r["messageId"] == i and r["offset"] == offset, (i, r)
            offset += 1
    assert len(read_records(kafka, t, offset)) == offset


def test_many_sockets_share_producer(srv, kafka):
    t = new_topic(kafka, partitions=3)
    wss = [open_ws(srv, t, clientId="c%d" % i) for i in range(10)]
    try:
        for i, ws in enumerate(wss):
            for j in range(20):
                ws.send(json.dumps({"value": {"value": "%d-%d" % (i, j)},
                                    "messageId": j}))
        for ws in wss:
            ids = [result(ws)["messageId"] for _ in range(20)]
            assert ids == list(range(20))
    finally:
        for ws in wss:
            ws.close()
    recs = read_records(kafka, t, 200, partitions=[0, 1, 2])
    assert len(recs) == 200
    assert sorted(m.value() for m in recs) == sorted(
        b"%d-%d" % (i, j) for i in range(10) for j in range(20))


def test_echo_style_protocol_errors_still_apply(srv, topic):
    """The RFC 6455 layer is the same on /socket/in: an unmasked frame is
    a protocol error."""
    r, c = upgrade(srv, "?clientId=c&topic=" + topic)
    with c:
        assert r.status == 101
        c.send_frame(OP_TEXT, b'{"value":{"value":"x"}}', mask=False)
        code, _ = c.expect_close(5)
        assert code == 1002
