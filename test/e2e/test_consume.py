"""Consume over WebSocket, GET /socket/out, against the real broker: query
validation, the record JSON of every format type, undecodable records,
manual commits and the commit stack, auto-commit by age, autoCommit=true,
consumer groups, rate and batch limits, offset reset and isolation level,
and a client that never reads (bounded memory)."""

import base64
import json
import signal
import socket
import struct
import threading
import time
import uuid
from urllib.parse import quote

import pytest
import websocket
from confluent_kafka import (Consumer, ConsumerGroupState, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import assert_json_error, read_assigned, wait_until
from wsraw import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WsRaw, build_frame,
                   http_request_bytes, new_key)

ENVELOPE = ["wsProxyMessageId", "topic", "partition", "offset", "timestamp",
            "headers", "key", "value"]

# Every Out opened by a test; closed after the test even when it fails.
_OPEN = []


# -- fixtures ----------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(proxy_mod, kafka):
    return proxy_mod()


@pytest.fixture(autouse=True)
def _watchdog(request):
    """Fail a test that hangs instead of stalling the whole run."""
    limit = 240 if request.node.get_closest_marker("slow") else 120

    def boom(signum, frame):
        # pytest's Failed is a BaseException: no library swallows it
        pytest.fail("test still running after %d s" % limit)

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _alive(request):
    yield
    while _OPEN:
        _OPEN.pop().close()
    if "srv" in request.fixturenames:
        request.getfixturevalue("srv").assert_alive()


@pytest.fixture(scope="module")
def topic(kafka):
    """An existing topic for the validation tests."""
    return new_topic(kafka, 1)


# -- Kafka helpers ------------------------------------------------------------

def new_topic(kafka, partitions=1):
    name = "out-" + uuid.uuid4().hex[:12]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions,
                                  replication_factor=1)])[name].result(30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        if t is not None and t.error is None and \
                len(t.partitions) == partitions:
            break
        time.sleep(0.1)
    return name


class Prod:
    """A confluent_kafka producer; send() returns the delivery reports."""

    def __init__(self, kafka, **conf):
        c = {"bootstrap.servers": kafka.bootstrap, "linger.ms": 2,
             "enable.idempotence": True}
        c.update(conf)
        self.p = Producer(c)

    def send(self, topic, records, flush=True):
        """@records: dicts with "value" (bytes or None = tombstone) and
        optionally "key", "headers" (list of (str, bytes|None)), "partition".
        Returns the delivery reports (Messages) in the order of @records."""
        out = [None] * len(records)
        errs = []

        def cb(i):
            def f(err, msg):
                if err is not None:
                    errs.append((i, err))
                out[i] = msg
            return f

        for i, r in enumerate(records):
            kw = {"value": r.get("value"), "on_delivery": cb(i)}
            for k in ("key", "headers", "partition"):
                if r.get(k) is not None:
                    kw[k] = r[k]
            while True:
                try:
                    self.p.produce(topic, **kw)
                    break
                except BufferError:
                    self.p.poll(0.1)
            self.p.poll(0)
        if flush:
            assert self.p.flush(60) == 0, "producer did not flush"
            assert not errs, errs
        return out


def produce(kafka, topic, records):
    return Prod(kafka).send(topic, records)


def produce_values(kafka, topic, values, partition=None):
    return produce(kafka, topic, [{"value": v, "partition": partition}
                                  for v in values])


def committed(kafka, group, topic, partitions=(0,)):
    """The group's committed offsets {partition: offset} (-1001 = none)."""
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions],
                          timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def group_members(kafka, group):
    """(state, [sorted assigned partitions of each member])."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    d = admin.describe_consumer_groups([group])[group].result(10)
    parts = []
    for m in d.members:
        tps = m.assignment.topic_partitions if m.assignment else []
        parts.append(sorted(tp.partition for tp in tps or []))
    return d.state, parts


def wait_group(kafka, group, members, partitions, timeout=40):
    """Wait until @group is stable with @members members, each owning at
    least one partition, together owning 0..@partitions-1 once each."""
    last = [None]

    def ok():
        st, parts = group_members(kafka, group)
        last[0] = (st, parts)
        flat = sorted(p for ps in parts for p in ps)
        return (st == ConsumerGroupState.STABLE and len(parts) == members
                and all(parts) and flat == list(range(partitions)))

    assert wait_until(ok, timeout, 0.3), \
        "group %s not stable with %d members within %d s: %r" % (
            group, members, timeout, last[0])
    return last[0][1]


# -- the /socket/out client ---------------------------------------------------

def out_path(topic, **params):
    q = {"clientId": "e2e-out", "topic": topic,
         "groupId": "g-" + uuid.uuid4().hex[:12]}
    q.update(params)
    q = {k: v for k, v in q.items() if v is not None}
    return "/socket/out?" + "&".join(
        "%s=%s" % (k, quote(str(v), safe="")) for k, v in q.items()), q


def is_record(obj):
    return isinstance(obj, dict) and "wsProxyMessageId" in obj and \
        "offset" in obj and "topic" in obj


def rid(r):
    return (r.get("partition"), r.get("offset"))


class Out:
    """A /socket/out WebSocket (websocket-client). groupId defaults to a
    fresh one per socket; pass groupId=None to leave it out."""

    def __init__(self, srv, topic, **params):
        path, q = out_path(topic, **params)
        self.group = q.get("groupId") or q["clientId"] + "-group"
        self.ws = websocket.create_connection(srv.ws_url(path), timeout=30)
        self.pending = []  # records of a partly consumed batch frame
        self.frames = []   # every parsed data frame
        self.texts = []    # and its text
        self.closed = False
        _OPEN.append(self)

    def _next(self, timeout):
        """(opcode, payload) of the next data or close frame; pings are
        answered and skipped. None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.ws.settimeout(max(0.01, left))
            try:
                op, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                return None
            if op not in (websocket.ABNF.OPCODE_PING,
                          websocket.ABNF.OPCODE_PONG):
                return op, data

    def frame(self, timeout=20.0):
        """The next data frame parsed, or None on timeout."""
        f = self._next(timeout)
        if f is None:
            return None
        op, data = f
        if op == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            raise AssertionError("server closed the socket: %s %r" % (
                code, data[2:]))
        assert op == websocket.ABNF.OPCODE_TEXT, \
            "not a text frame: op %s %r" % (op, data[:100])
        text = data.decode("utf-8")
        obj = json.loads(text)
        self.frames.append(obj)
        self.texts.append(text)
        return obj

    def records(self, n, timeout=30.0, errors=None):
        """The next @n records (batch frames flattened). Frames that are not
        records go to @errors, or fail the test."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            if self.pending:
                out.append(self.pending.pop(0))
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            obj = self.frame(left)
            if obj is None:
                break
            for it in (obj if isinstance(obj, list) else [obj]):
                if is_record(it):
                    self.pending.append(it)
                elif errors is not None:
                    errors.append(it)
                else:
                    raise AssertionError("unexpected frame %r" % (obj,))
        assert len(out) == n, "got %d of %d records within %.0f s: %r" % (
            len(out), n, timeout, [rid(r) for r in out])
        return out

    def error(self, timeout=5.0):
        """The next frame, which must be an error frame (not a record)."""
        assert not self.pending, self.pending
        obj = self.frame(timeout)
        assert obj is not None, "no error frame within %.1f s" % timeout
        assert isinstance(obj, dict) and not is_record(obj), \
            "expected an error frame, got %r" % (obj,)
        assert isinstance(obj.get("error"), str), obj
        assert isinstance(obj.get("message"), str) and obj["message"], obj
        return obj

    def quiet(self, seconds):
        """Nothing arrives for @seconds."""
        assert not self.pending, "unexpected records %r" % self.pending
        obj = self.frame(seconds)
        assert obj is None, "unexpected frame: %r" % (obj,)

    def commit(self, rec_or_id, **extra):
        mid = rec_or_id if isinstance(rec_or_id, str) else \
            rec_or_id["wsProxyMessageId"]
        d = {"wsProxyMessageId": mid}
        d.update(extra)
        self.ws.send(json.dumps(d))

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.ws.close(timeout=2)
            except Exception:
                pass


def raw_upgrade(srv, query):
    c = WsRaw(srv.port)
    c.send_raw(http_request_bytes("GET", "/socket/out" + query, [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]))
    r = c.read_response(body=None)
    return r, c


# -- expected record JSON -----------------------------------------------------

def b64(b):
    return base64.b64encode(b).decode()


def f32(x):
    return struct.unpack(">f", struct.pack(">f", x))[0]


def default_key(b):
    try:
        return {"value": b.decode("utf-8"), "format": "string"}
    except UnicodeDecodeError:
        return {"value": b64(b), "format": "bytearray"}


def envelope(m):
    ts = m.timestamp()[1]
    hs = m.headers()
    return {
        "wsProxyMessageId": "%s-%d-%d-%d" % (m.topic(), m.partition(),
                                             m.offset(), ts),
        "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
        "timestamp": ts,
        "headers": None if not hs else [header(k, v) for k, v in hs]}


def header(k, v):
    if v is None:
        return {"key": k, "value": None}
    try:
        return {"key": k, "value": v.decode("utf-8")}
    except UnicodeDecodeError:
        return {"key": k, "value": b64(v), "format": "bytearray"}


def expected_string_record(m):
    """What the proxy sends for @m with no keyType and valType=string."""
    e = envelope(m)
    if m.key() is not None:
        e["key"] = default_key(m.key())
    v = m.value()
    e["value"] = {"value": None if v is None else v.decode("utf-8"),
                  "format": "string"}
    return e


def assert_order(rec):
    have = [k for k in rec if k in ENVELOPE]
    assert have == [k for k in ENVELOPE if k in rec], \
        "field order %r, expected %r" % (list(rec), ENVELOPE)
    for k in ENVELOPE:
        if k != "key":
            assert k in rec, "field %s missing in %r" % (k, rec)


def assert_compact(text):
    """No whitespace outside JSON strings."""
    in_str = esc = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in " \t\r\n":
            raise AssertionError("not compact JSON at %d: %r" % (
                i, text[max(0, i - 40):i + 40]))


def truth(kafka, topic, n, partitions=(0,)):
    msgs = read_assigned(kafka.bootstrap, topic, n, list(partitions))
    assert len(msgs) == n, "Kafka holds %d of %d records" % (len(msgs), n)
    return msgs


# -- 1. validation before the upgrade -----------------------------------------

VALIDATION = [
    ("", "Request param 'clientId' is missing."),
    ("?topic={t}", "Request param 'clientId' is missing."),
    ("?clientId=&topic={t}", "Request param 'clientId' is missing."),
    ("?clientId=c", "Request param 'topic' is missing."),
    ("?clientId=c&topic=", "Request param 'topic' is missing."),
    ("?clientId=c&topic={t}&keyType=nope",
     "'nope' is not a valid format type"),
    ("?clientId=c&topic={t}&valType=nope",
     "'nope' is not a valid format type"),
    ("?clientId=c&topic={t}&offsetResetStrategy=sideways",
     "sideways is not a valid offset reset strategy"),
    ("?clientId=c&topic={t}&isolationLevel=dirty",
     "Read isolation 'dirty' is not a valid value. Please use one of "
     "'read_committed' or 'read_uncommitted'."),
    ("?clientId=c&topic={t}&autoCommit=maybe",
     "'maybe' is not a valid boolean value"),
    ("?clientId=c&topic=a%22b", "Request param 'topic' is not a valid Kafka "
     "topic name: it contains a character other than ASCII alphanumerics, "
     "'.', '_' and '-'."),
    ("?clientId=c&topic=.", "Request param 'topic' is not a valid Kafka "
     "topic name: '.' and '..' are not allowed."),
]


@pytest.mark.parametrize("query,message", VALIDATION, ids=[
    "nothing", "no-client", "empty-client", "no-topic", "empty-topic",
    "bad-keytype", "bad-valtype", "bad-reset", "bad-isolation",
    "bad-autocommit", "bad-topic-char", "bad-topic-dot"])
def test_query_validation_400(srv, topic, query, message):
    r, c = raw_upgrade(srv, query.format(t=topic))
    with c:
        assert_json_error(r.status, r.headers, r.body, 400, message)


def test_unknown_socket_payload_400(srv, topic):
    r, c = raw_upgrade(srv, "?clientId=c&topic=%s&socketPayload=xml" % topic)
    with c:
        assert_json_error(r.status, r.headers, r.body, 400,
                          "'xml' is not a valid socket payload")


@pytest.mark.parametrize("param", ["rate", "batchSize"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", ""])
def test_rate_and_batch_size_must_be_positive_integers(srv, topic, param,
                                                       value):
    u = uuid.uuid4().hex[:10]
    r, c = raw_upgrade(srv, "?clientId=c-%s&topic=%s&%s=%s" % (u, topic, param,
                                                               value))
    with c:
        if value == "" and r.status == 101:
            return  # an empty optional parameter may count as absent
        msg = assert_json_error(r.status, r.headers, r.body, 400)
        assert param in msg, msg


def test_unknown_topic_400(srv):
    t = "missing-" + uuid.uuid4().hex[:8]
    r, c = raw_upgrade(srv, "?clientId=c&topic=" + t)
    with c:
        assert_json_error(r.status, r.headers, r.body, 400,
                          "Topic %s was not found" % t)


@pytest.mark.parametrize("query", [
    "offsetResetStrategy=LaTeSt", "offsetResetStrategy=Earliest",
    "offsetResetStrategy=NONE", "offsetResetStrategy=latest",
    "isolationLevel=read_committed", "isolationLevel=read_uncommitted",
    "rate=3", "batchSize=7", "autoCommit=false", "autoCommit=true",
    "socketPayload=json", "keyType=long&valType=json",
    "valType=bytearray", "valType=avro", "groupId=explicit-{u}",
])
def test_valid_parameters_upgrade_101(srv, topic, query):
    # a fresh client and group each: sockets of one group are limited
    u = uuid.uuid4().hex[:10]
    q = "?clientId=c-%s&topic=%s&%s" % (u, topic, query.format(u=u))
    if "groupId=" not in query:
        q += "&groupId=g-" + u
    r, c = raw_upgrade(srv, q)
    with c:
        assert r.status == 101, r


# -- 2. records: every field --------------------------------------------------

def test_records_every_field_one_partition(srv, kafka):
    t = new_topic(kafka, 1)
    recs = [
        {"key": b"k0", "value": b"plain"},
        {"value": b"no key"},
        {"key": b"k2", "value": b"with headers",
         "headers": [("h1", b"v1"), ("h2", "\u00e9\u20ac".encode()),
                     ("h1", b"dup")]},
        {"key": b"k3", "value": b"null header",
         "headers": [("n", None), ("e", b""), ("bin", b"\xff\x00")]},
        {"key": b"k4", "value": None},  # tombstone
        {"value": None},  # tombstone without a key
        {"key": b"\xff\xfe\x00\x01", "value": b"binary key"},
        {"key": b"", "value": b"empty key"},
        {"key": "\u043a\u043b\u044e\u0447".encode(),
         "value": "\u0437\u043d\u0430\u0447 \U0001F600".encode()},
        {"key": b"last", "value": b""},
    ]
    drs = produce(kafka, t, recs)
    msgs = truth(kafka, t, len(recs))
    for dr, m in zip(drs, msgs):
        assert (dr.partition(), dr.offset(), dr.timestamp()[1]) == \
            (m.partition(), m.offset(), m.timestamp()[1])
    out = Out(srv, t)
    got = out.records(len(recs))
    out.quiet(1.0)
    for i, (g, m) in enumerate(zip(got, msgs)):
        assert g == expected_string_record(m), "record %d" % i
        assert_order(g)
        assert ("key" in g) == (recs[i].get("key") is not None)
    assert got[4]["value"] == {"value": None, "format": "string"}
    assert got[3]["headers"] == [
        {"key": "n", "value": None}, {"key": "e", "value": ""},
        {"key": "bin", "value": "/wA=", "format": "bytearray"}]
    assert got[6]["key"] == {"value": b64(b"\xff\xfe\x00\x01"),
                             "format": "bytearray"}
    assert "error" not in got[6]
    for text in out.texts:
        assert_compact(text)
    assert all(isinstance(f, dict) for f in out.frames), \
        "without batchSize every frame is one record object"


def test_frame_lengths_across_header_sizes(srv, kafka):
    """A drain's frames are laid out back to back in one buffer, each header
    fixed up once its payload is written (4 bytes kept, 10 needed from 64 KiB
    on): records on both sides of that boundary, mixed in one drain, arrive
    whole and in order."""
    t = new_topic(kafka, 1)
    sizes = [0, 1, 500] + list(range(65000, 65700, 23)) + [300000, 7]
    vals = [(b"%d:" % i) + b"y" * n for i, n in enumerate(sizes)]
    produce_values(kafka, t, vals)
    out = Out(srv, t)
    got = out.records(len(vals))
    assert [g["offset"] for g in got] == list(range(len(vals)))
    for g, v in zip(got, vals):
        assert g["value"] == {"value": v.decode(), "format": "string"}
    out.quiet(0.5)


def test_records_three_partitions_order(srv, kafka):
    t = new_topic(kafka, 3)
    recs = []
    for i in range(45):
        r = {"key": b"k%d" % i, "value": b"v%d" % i, "partition": i % 3}
        if i % 4 == 1:
            r["headers"] = [("i", b"%d" % i), ("null", None)]
        if i % 10 == 7:
            r["value"] = None
        if i % 11 == 3:
            del r["key"]
        recs.append(r)
    drs = produce(kafka, t, recs)
    msgs = truth(kafka, t, len(recs), partitions=(0, 1, 2))
    by_pos = {(m.partition(), m.offset()): m for m in msgs}
    for dr in drs:
        assert (dr.partition(), dr.offset()) in by_pos
    out = Out(srv, t)
    got = out.records(len(recs))
    out.quiet(1.0)
    assert len({g["wsProxyMessageId"] for g in got}) == len(recs)
    for g in got:
        assert g == expected_string_record(by_pos[rid(g)])
        assert_order(g)
    for p in range(3):
        offs = [g["offset"] for g in got if g["partition"] == p]
        assert offs == list(range(15)), "partition %d order %r" % (p, offs)
        vals = [g["value"]["value"] for g in got if g["partition"] == p]
        assert vals == [None if r.get("value") is None else
                        r["value"].decode() for r in recs
                        if r["partition"] == p]


def test_default_group_id_is_client_id_group(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"a", b"b", b"c", b"d"])
    cid = "cid-" + uuid.uuid4().hex[:8]
    out = Out(srv, t, clientId=cid, groupId=None, autoCommit="false")
    assert out.group == cid + "-group"
    got = out.records(4)
    out.commit(got[2])
    out.close()
    assert wait_until(lambda: committed(kafka, cid + "-group", t) == {0: 3},
                      10), committed(kafka, cid + "-group", t)


# -- 3. every format type -----------------------------------------------------

def _ints(fmt, code, values):
    return [(struct.pack(code, v), v) for v in values]


FORMATS = {
    "int": _ints("int", ">i", [0, 1, -1, 42, 2 ** 31 - 1, -2 ** 31]),
    "short": _ints("short", ">h", [0, -1, 7, 2 ** 15 - 1, -2 ** 15]),
    "long": _ints("long", ">q", [0, -1, 2 ** 53 + 1, 2 ** 63 - 1, -2 ** 63]),
    "double": [(struct.pack(">d", v), v) for v in [
        0.0, 1.5, -1.25e300, 0.1, 5e-324, 1.7976931348623157e308,
        -2.2250738585072014e-308, 123456789.12345679, 1e21, -7.0]],
    "float": [(struct.pack(">f", v), f32(v)) for v in [
        0.0, 0.25, -3.5, 0.1, 3.4028234663852886e38, 1e-45, 16777216.0,
        -1.1754943508222875e-38]],
    "json": [
        (b'{"a":[1,2,{"b":null}],"c":"\\u00e9"}',
         {"a": [1, 2, {"b": None}], "c": "\u00e9"}),
        (b'[1,"x",true,false,null,1.5,-2,{}]',
         [1, "x", True, False, None, 1.5, -2, {}]),
        (' { "k" : "\u00fc\u20ac\U0001F600" ,\n "n" : { "m" : [ ] } } '
         .encode(), {"k": "\u00fc\u20ac\U0001F600", "n": {"m": []}}),
        (b'{"esc":"tab\\there \\"q\\" back\\\\slash \\u0000 nul"}',
         {"esc": "tab\there \"q\" back\\slash \x00 nul"}),
        (b'"just a string"', "just a string"),
        (b"123", 123),
        (b"-4.5e-3", -4.5e-3),
        (b"true", True),
        (b"null", None),
    ],
    "string": [
        ("h\u00e9llo w\u00f6rld \U0001F600 \u4e2d".encode(),
         "h\u00e9llo w\u00f6rld \U0001F600 \u4e2d"),
        ("\x00\x01\x08\t\n\x0c\r\"\\\x1f\x7f/</script>".encode(),
         "\x00\x01\x08\t\n\x0c\r\"\\\x1f\x7f/</script>"),
        (b"", ""),
        ("\u2028\u2029\ufeff".encode(), "\u2028\u2029\ufeff"),
        (b"{\"not\": \"parsed\"}", "{\"not\": \"parsed\"}"),
    ],
    "bytearray": [(bytes(range(256)), b64(bytes(range(256)))), (b"", ""),
                  (b"\x00", "AA=="), (b"\xff" * 1000, b64(b"\xff" * 1000))],
    "avro": [(b"\x02\x04", "AgQ="), (bytes(range(255, -1, -1)),
                                      b64(bytes(range(255, -1, -1))))],
}


def _same(fmt, got, want):
    if fmt in ("int", "short", "long"):
        return type(got) is int and got == want
    if fmt == "double":
        return type(got) in (int, float) and float(got) == want
    if fmt == "float":
        return type(got) in (int, float) and f32(float(got)) == want
    if fmt == "json":
        return got == want and type(got) is type(want)
    return type(got) is str and got == want


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_types(srv, kafka, fmt):
    """Each case is produced as key and value; then one tombstone."""
    t = new_topic(kafka, 1)
    cases = FORMATS[fmt]
    recs = [{"key": raw, "value": raw} for raw, _ in cases] + [{"value": None}]
    produce(kafka, t, recs)
    msgs = truth(kafka, t, len(recs))
    out = Out(srv, t, keyType=fmt, valType=fmt)
    got = out.records(len(recs))
    bad = []  # every mismatch, reported together
    for i, ((raw, want), g, m) in enumerate(zip(cases, got, msgs)):
        env = envelope(m)
        assert {k: g[k] for k in env} == env, i
        assert_order(g)
        if "error" in g:
            bad.append("case %d (raw %r): %s" % (i, raw[:60],
                                                json.dumps(g)[-400:]))
            continue
        assert g["value"]["format"] == fmt and g["key"]["format"] == fmt, g
        assert set(g["value"]) == {"value", "format"}, g
        if not _same(fmt, g["value"]["value"], want):
            bad.append("case %d: value %r (raw %r), expected %r" % (
                i, g["value"]["value"], raw[:40], want))
        if not _same(fmt, g["key"]["value"], want):
            bad.append("case %d: key %r, expected %r" % (
                i, g["key"]["value"], want))
    assert not bad, "\n".join(bad)
    tomb = got[-1]
    assert "key" not in tomb and "error" not in tomb, tomb
    assert tomb["value"] == {"value": None, "format": fmt}, tomb
    for text in out.texts:
        assert_compact(text)


def test_format_types_case_insensitive(srv, kafka):
    t = new_topic(kafka, 1)
    produce(kafka, t, [{"key": struct.pack(">q", 5), "value": b'{"a":1}'}])
    out = Out(srv, t, keyType="LONG", valType="Json")
    [g] = out.records(1)
    assert g["key"] == {"value": 5, "format": "long"}
    assert g["value"] == {"value": {"a": 1}, "format": "json"}


# -- 4. undecodable keys and values -------------------------------------------

BAD = [
    ("int", [b"\x00\x00\x01", b"", b"\x00\x00\x00\x00\x01"],
     struct.pack(">i", 7), 7),
    ("short", [b"\x01", b"\x00\x01\x02"], struct.pack(">h", 3), 3),
    ("long", [b"\x00" * 7, b"\x00" * 9], struct.pack(">q", 5), 5),
    ("double", [b"\x00" * 4, b"\x00" * 9, struct.pack(">d", float("nan")),
                struct.pack(">d", float("inf")),
                struct.pack(">d", float("-inf"))],
     struct.pack(">d", 2.5), 2.5),
    ("float", [b"\x00" * 8, b"\x00" * 3, struct.pack(">f", float("nan")),
               struct.pack(">f", float("-inf"))], struct.pack(">f", 2.5), 2.5),
    ("json", [b"{not json", b"[1,2", b"", b'{"a":1} trailing', b"\xff{}"],
     b'{"ok":true}', {"ok": True}),
    ("string", [b"\xff\xfe", b"abc\xc3", b"\xed\xa0\x80", b"\xc0\xaf",
                b"\xf4\x90\x80\x80"], b"fine", "fine"),
]


@pytest.mark.parametrize("fmt,bad,good_raw,good", BAD,
                         ids=[b[0] for b in BAD])
def test_undecodable_values_delivered_with_error(srv, kafka, fmt, bad,
                                                 good_raw, good):
    t = new_topic(kafka, 1)
    seq = []
    for b in bad:
        seq += [b, good_raw]
    produce(kafka, t, [{"key": b"k%d" % i, "value": v}
                       for i, v in enumerate(seq)])
    msgs = truth(kafka, t, len(seq))
    out = Out(srv, t, valType=fmt)
    got = out.records(len(seq))
    for i, (g, m, raw) in enumerate(zip(got, msgs, seq)):
        env = envelope(m)
        assert {k: g.get(k) for k in env} == env, i
        assert_order(g)
        assert g["key"] == {"value": "k%d" % i, "format": "string"}
        if i % 2 == 0:
            assert g.get("error") == "invalid_value", (i, raw, g)
            assert isinstance(g.get("message"), str) and g["message"], g
            assert g["value"] == {"value": b64(raw), "format": "bytearray"}, \
                (i, raw, g)
        else:
            assert "error" not in g and "message" not in g, g
            assert g["value"]["format"] == fmt
            assert _same(fmt, g["value"]["value"], good), g
    out.quiet(0.5)


def test_undecodable_keys_delivered_with_error(srv, kafka):
    t = new_topic(kafka, 1)
    keys = [b"\x01\x02\x03", struct.pack(">q", 9), b"", struct.pack(">q", -1),
            b"\x00" * 16, struct.pack(">q", 0)]
    produce(kafka, t, [{"key": k, "value": b"v%d" % i}
                       for i, k in enumerate(keys)])
    msgs = truth(kafka, t, len(keys))
    out = Out(srv, t, keyType="long")
    got = out.records(len(keys))
    for i, (g, m, k) in enumerate(zip(got, msgs, keys)):
        env = envelope(m)
        assert {x: g.get(x) for x in env} == env, i
        assert g["value"] == {"value": "v%d" % i, "format": "string"}, g
        if i % 2 == 0:
            assert g.get("error") == "invalid_key", (i, g)
            assert isinstance(g.get("message"), str) and g["message"], g
            assert g["key"] == {"value": b64(k), "format": "bytearray"}, g
        else:
            assert "error" not in g, g
            assert g["key"] == {"value": struct.unpack(">q", k)[0],
                                "format": "long"}, g


# -- 5. manual commits --------------------------------------------------------

def test_manual_commit_resume_and_redelivery(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"m%d" % i for i in range(10)])
    g = "mc-" + uuid.uuid4().hex[:10]

    out = Out(srv, t, groupId=g, autoCommit="false")
    got = out.records(10)
    assert [r["offset"] for r in got] == list(range(10))
    out.commit(got[4])
    out.close()  # right after the commit: it must still reach Kafka
    assert committed(kafka, g, t) == {0: 5}

    # Reconnect: resumes right after the commit; 5..9 were never committed
    # and are delivered again.
    out = Out(srv, t, groupId=g, autoCommit="false")
    again = out.records(5)
    assert [r["offset"] for r in again] == [5, 6, 7, 8, 9]
    assert [r["value"]["value"] for r in again] == \
        ["m%d" % i for i in range(5, 10)]
    assert [r["wsProxyMessageId"] for r in again] == \
        [r["wsProxyMessageId"] for r in got[5:]]
    out.quiet(1.0)
    out.commit(again[3], note="extra fields are ignored")  # offset 8
    out.quiet(0.7)  # success has no response
    assert wait_until(lambda: committed(kafka, g, t) == {0: 9}, 10), \
        committed(kafka, g, t)
    # offset 6 was cleared from the stack by the commit of 8
    out.commit(again[1])
    e = out.error()
    assert e["error"] == "unknown_message_id", e
    assert e["wsProxyMessageId"] == again[1]["wsProxyMessageId"], e
    # ... and so was 8 itself
    out.commit(again[3])
    e = out.error()
    assert e["error"] == "unknown_message_id", e
    assert e["wsProxyMessageId"] == again[3]["wsProxyMessageId"], e
    out.commit(again[4])  # offset 9
    out.quiet(0.5)
    out.close()
    assert committed(kafka, g, t) == {0: 10}

    out = Out(srv, t, groupId=g, autoCommit="false")
    produce_values(kafka, t, [b"sentinel"])
    [s] = out.records(1)
    assert (s["offset"], s["value"]["value"]) == (10, "sentinel"), s


def test_manual_commit_per_partition(srv, kafka):
    """A commit covers its own partition only."""
    t = new_topic(kafka, 2)
    produce(kafka, t, [{"value": b"p%d-%d" % (i % 2, i // 2),
                       "partition": i % 2} for i in range(12)])
    g = "mcp-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g, autoCommit="false")
    got = out.records(12)
    p0 = [r for r in got if r["partition"] == 0]
    p1 = [r for r in got if r["partition"] == 1]
    assert [r["offset"] for r in p0] == list(range(6))
    assert [r["offset"] for r in p1] == list(range(6))
    out.commit(p0[2])
    out.commit(p1[4])
    out.quiet(0.5)
    # p0[1] is cleared by the commit of p0[2]; p1[1] is too (by p1[4]);
    # p0[4] is still on p0's stack
    out.commit(p0[1])
    assert out.error()["error"] == "unknown_message_id"
    out.commit(p0[4])
    out.quiet(0.5)
    out.close()
    assert committed(kafka, g, t, (0, 1)) == {0: 5, 1: 5}
    out = Out(srv, t, groupId=g, autoCommit="false")
    again = out.records(2)
    assert sorted(rid(r) for r in again) == [(0, 5), (1, 5)]
    out.quiet(1.0)


# -- 6. the commit stack overflows --------------------------------------------

def test_commit_stack_max_size(proxy, kafka):
    p = proxy(config="kafka.ws.proxy.commit-handler.max-stack-size = 3\n")
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"s%d" % i for i in range(10)])
    g = "st-" + uuid.uuid4().hex[:10]
    out = Out(p, t, groupId=g, autoCommit="false")
    got = out.records(10)
    # The stack holds offsets 7, 8, 9; 0 to 6 were dropped, and are still
    # committed by their ids: a client behind the proxy by more than the
    # stack has only such ids (they got unknown_message_id, and nothing it
    # read was ever committed).
    out.commit(got[6])
    out.quiet(0.5)
    assert wait_until(lambda: committed(kafka, g, t) == {0: 7}, 10)
    out.commit(got[2])  # covered by the commit of 6 already
    e = out.error()
    assert e["error"] == "unknown_message_id", e
    assert e["wsProxyMessageId"] == got[2]["wsProxyMessageId"], e
    out.commit(got[9])
    out.quiet(0.5)
    out.close()
    assert committed(kafka, g, t) == {0: 10}
    out = Out(p, t, groupId=g, autoCommit="false")
    produce_values(kafka, t, [b"sentinel"])
    [s] = out.records(1)
    assert s["offset"] == 10, "redelivered %r" % (s,)
    out.close()
    p.assert_alive()


def test_a_client_behind_by_more_than_the_stack_can_commit(srv, kafka):
    """The socket and kernel buffers hold thousands of records, so a client
    reading a backlog is always more than max-stack-size (100) records
    behind the proxy. Every commit it sent got unknown_message_id, nothing
    was committed, and a reconnect got everything again."""
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"x" * 100] * 20000)
    g = "lag-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g, autoCommit="false")
    for r in out.records(3000):
        out.commit(r)
    out.close()
    assert wait_until(lambda: committed(kafka, g, t) == {0: 3000}, 10), \
        committed(kafka, g, t)
    out = Out(srv, t, groupId=g, autoCommit="false")
    assert out.records(1)[0]["offset"] == 3000
    out.close()


# -- 7. auto-commit by age ----------------------------------------------------

def test_auto_commit_by_age(proxy, kafka):
    p = proxy(env={"WSPROXY_CH_AUTOCOMMIT_ENABLED": "true",
                   "WSPROXY_CH_AUTOCOMMIT_INTERVAL": "200ms",
                   "WSPROXY_CH_AUTOCOMMIT_MAX_AGE": "1 second"})
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"a%d" % i for i in range(5)])
    g = "ac-" + uuid.uuid4().hex[:10]
    out = Out(p, t, groupId=g, autoCommit="false")
    got = out.records(5)
    t0 = time.monotonic()
    early = committed(kafka, g, t)
    if time.monotonic() - t0 < 0.6:
        assert early[0] < 0, "committed before max-age: %r" % early
    assert wait_until(lambda: committed(kafka, g, t) == {0: 5}, 6, 0.2), \
        "the newest record older than max-age was not committed: %r" % (
            committed(kafka, g, t),)
    time.sleep(0.5)
    out.close()
    out = Out(p, t, groupId=g, autoCommit="false")
    produce_values(kafka, t, [b"sentinel"])
    [s] = out.records(1)
    assert s["offset"] == 5, "redelivered %r" % (s,)
    assert [r["offset"] for r in got] == list(range(5))
    out.close()
    p.assert_alive()


def test_no_auto_commit_when_disabled(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"d%d" % i for i in range(5)])
    g = "nac-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g, autoCommit="false")
    out.records(5)
    time.sleep(2.0)
    out.close()
    assert committed(kafka, g, t)[0] < 0
    out = Out(srv, t, groupId=g, autoCommit="false")
    again = out.records(5)
    assert [r["offset"] for r in again] == list(range(5))
    out.quiet(0.5)


# -- 8. malformed commit frames -----------------------------------------------

def test_malformed_commit_frames(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"x0", b"x1", b"x2"])
    out = Out(srv, t, autoCommit="false")
    got = out.records(3)
    for text in ["not json", "{", "{}", '{"foo":"bar"}',
                 '{"wsProxyMessageId":5}', '{"wsProxyMessageId":null}',
                 '{"wsProxyMessageId":["a"]}', '["x"]', '"str"', "42"]:
        out.ws.send(text)
        e = out.error()
        assert e["error"] == "invalid_commit", (text, e)
    # a NUL read as "not a JSON object"; a repeated key was taken (its last
    # value committed)
    for text, why in [
            ('{"wsProxyMessageId":"%s\\u0000"}' % got[2]["wsProxyMessageId"],
             "'wsProxyMessageId' holds a NUL character: no record has such "
             "an id"),
            ('{"wsProxyMessageId":"x","wsProxyMessageId":"%s"}' %
             got[2]["wsProxyMessageId"], "a commit must not repeat a key")]:
        out.ws.send(text)
        e = out.error()
        assert e == {"error": "invalid_commit", "message": why}, (text, e)
    out.ws.send_binary(json.dumps(
        {"wsProxyMessageId": got[0]["wsProxyMessageId"]}).encode())
    e = out.error()
    assert e["error"] == "unsupported_frame", e
    bogus = "%s-0-999-1" % t
    out.commit(bogus)
    e = out.error()
    assert e == {"error": "unknown_message_id", "wsProxyMessageId": bogus,
                 "message": e["message"]}, e
    out.ws.send(json.dumps({"wsProxyMessageId": got[0]["wsProxyMessageId"],
                            "extra": [1, {"x": None}]}))
    out.quiet(0.5)
    produce_values(kafka, t, [b"x3", b"x4", b"x5"])
    more = out.records(3)
    assert [r["offset"] for r in more] == [3, 4, 5]
    out.commit(more[2])
    out.quiet(0.5)
    out.close()
    assert committed(kafka, out.group, t) == {0: 6}


# -- 9. autoCommit=true -------------------------------------------------------

def test_auto_commit_true_resumes_after_what_was_sent(srv, kafka):
    """With rate=1 the proxy has written exactly the records the client read
    when it closes (the next is 1 s away): reconnecting continues there."""
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"r%d" % i for i in range(8)])
    g = "act-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g, rate=1)
    first = out.records(3, timeout=30)
    out.close()
    assert [r["offset"] for r in first] == [0, 1, 2]
    out = Out(srv, t, groupId=g)
    rest = out.records(5)
    assert [r["offset"] for r in rest] == [3, 4, 5, 6, 7], \
        "after reading 0..2: %r" % [r["offset"] for r in rest]
    out.quiet(1.0)


def test_auto_commit_true_ignores_inbound_and_commits_on_close(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"i%d" % i for i in range(6)])
    g = "aci-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g)  # autoCommit defaults to true
    got = out.records(6)
    out.ws.send("garbage")
    out.commit(got[0])
    out.commit("no-such-id")
    out.ws.send_binary(b"\x00\x01")
    out.quiet(0.7)
    produce_values(kafka, t, [b"i6"])
    [r6] = out.records(1)
    assert r6["offset"] == 6
    out.close()
    assert wait_until(lambda: committed(kafka, g, t) == {0: 7}, 10), \
        committed(kafka, g, t)
    out = Out(srv, t, groupId=g)
    produce_values(kafka, t, [b"sentinel"])
    [s] = out.records(1)
    assert s["offset"] == 7, "redelivered %r" % (s,)


def test_auto_commit_true_commits_periodically(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"p%d" % i for i in range(4)])
    g = "acp-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g)
    out.records(4)
    assert wait_until(lambda: committed(kafka, g, t) == {0: 4}, 20, 0.5), \
        "not committed while the socket is open: %r" % (
            committed(kafka, g, t),)


# -- 10. consumer groups ------------------------------------------------------

class Collector(threading.Thread):
    """Reads every record of an Out in the background."""

    def __init__(self, out):
        super().__init__(daemon=True)
        self.out = out
        self.recs = []
        self.exc = None
        self.halt = threading.Event()
        self.start()

    def run(self):
        try:
            while not self.halt.is_set():
                obj = self.out.frame(0.2)
                if obj is None:
                    continue
                for it in obj if isinstance(obj, list) else [obj]:
                    assert is_record(it), it
                    self.recs.append(it)
        except Exception as e:  # reported by stop()
            self.exc = e

    def stop(self):
        self.halt.set()
        self.join(5)
        assert self.exc is None, "reader of %s failed: %r" % (
            self.out.group, self.exc)
        return self.recs


COOPERATIVE = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"


@pytest.mark.parametrize("strategy", [None, COOPERATIVE])
def test_group_splits_partitions_and_rebalances(srv, proxy, kafka, strategy):
    """Eager (librdkafka's default) and cooperative rebalancing, the latter
    set with the Java assignor class name a reference configuration has
    (regression: passed on as it was, librdkafka refused it and the proxy
    did not start: its session handler's consumer failed)."""
    if strategy:
        srv = proxy(config="kafka.ws.proxy.consumer.kafka-client-properties "
                    "{\n  partition.assignment.strategy = \"%s\"\n}\n"
                    % strategy)
    t = new_topic(kafka, 4)
    g = "grp-" + uuid.uuid4().hex[:10]
    prod = Prod(kafka)
    a = Out(srv, t, groupId=g, clientId="ga")
    ca = Collector(a)
    wait_group(kafka, g, 1, 4)
    b = Out(srv, t, groupId=g, clientId="gb")
    cb = Collector(b)
    wait_group(kafka, g, 2, 4)

    phase1 = [{"value": b"1-%d-%d" % (p, i), "partition": p}
              for i in range(5) for p in range(4)]
    prod.send(t, phase1)
    assert wait_until(lambda: len(ca.recs) + len(cb.recs) >= 20, 20), \
        (len(ca.recs), len(cb.recs))
    time.sleep(0.5)
    ra, rb = list(ca.recs), list(cb.recs)
    pa = {r["partition"] for r in ra}
    pb = {r["partition"] for r in rb}
    assert pa and pb, "one socket got nothing: %r %r" % (pa, pb)
    assert not pa & pb, "partitions shared: %r %r" % (pa, pb)
    assert pa | pb == {0, 1, 2, 3}
    ids = sorted(rid(r) for r in ra + rb)
    assert ids == sorted((p, i) for p in range(4) for i in range(5)), ids

    c = Out(srv, t, groupId=g, clientId="gc")
    cc = Collector(c)
    wait_group(kafka, g, 3, 4)
    phase2 = [{"value": b"2-%d-%d" % (p, i), "partition": p}
              for i in range(5) for p in range(4)]
    prod.send(t, phase2)

    def phase2_seen():
        return sum(1 for col in (ca, cb, cc) for r in list(col.recs)
                   if r["value"]["value"].startswith("2-"))

    assert wait_until(lambda: phase2_seen() >= 20, 20), phase2_seen()
    time.sleep(1.0)
    recs = {name: col.stop() for name, col in
            (("a", ca), ("b", cb), ("c", cc))}
    every = [r for rs in recs.values() for r in rs]
    # every record delivered at least once overall
    assert {rid(r) for r in every} == {(p, i) for p in range(4)
                                       for i in range(10)}
    # records produced after the group settled: each partition to one
    # socket, each record once
    owners = {}
    for name, rs in recs.items():
        for r in rs:
            if r["value"]["value"].startswith("2-"):
                owners.setdefault(r["partition"], []).append(name)
    for p in range(4):
        assert len(set(owners[p])) == 1, "partition %d read by %r" % (
            p, owners[p])
        assert len(owners[p]) == 5, "partition %d: %r" % (p, owners[p])
    assert {o[0] for o in owners.values()} == {"a", "b", "c"}, owners
    # and in order within each partition, per socket
    for rs in recs.values():
        for p in range(4):
            offs = [r["offset"] for r in rs if r["partition"] == p and
                    r["value"]["value"].startswith("2-")]
            assert offs == sorted(offs), offs


# -- 11. rate and batch size --------------------------------------------------

def test_rate_spaces_records(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"q%d" % i for i in range(15)])
    out = Out(srv, t, rate=5)
    first = out.records(1)
    t0 = time.monotonic()
    rest = out.records(14, timeout=30)
    took = time.monotonic() - t0
    # A burst of 5, then 5/s: the 15th comes about 2 s after the first.
    assert took >= 1.5, "15 records at rate=5 took only %.2f s" % took
    assert [r["offset"] for r in first + rest] == list(range(15))


def test_rate_applies_to_partitions_of_a_later_rebalance(srv, kafka):
    """Pausing and resuming use the socket's own copy of its assignment,
    kept from the rebalance events (asking librdkafka for it would block the
    worker loop): after a second member joins, the first socket's rate still
    spaces the records of the partition it was given in that rebalance."""
    t = new_topic(kafka, 2)
    g = "grp-" + uuid.uuid4().hex[:10]
    a = Out(srv, t, groupId=g, clientId="ra", rate=5)
    wait_group(kafka, g, 1, 2)
    b = Out(srv, t, groupId=g, clientId="rb")
    cb = Collector(b)
    parts = wait_group(kafka, g, 2, 2)
    Prod(kafka).send(t, [{"value": b"r-%d-%d" % (p, i), "partition": p}
                         for i in range(15) for p in range(2)])
    first = a.records(1)
    t0 = time.monotonic()
    rest = a.records(14, timeout=30)
    took = time.monotonic() - t0
    cb.stop()
    mine = {r["partition"] for r in first + rest}
    assert len(mine) == 1 and [mine] in ([set(x)] for x in parts), \
        (mine, parts)
    # A burst of 5, then 5/s: the 15th comes about 2 s after the first.
    assert took >= 1.5, "15 records at rate=5 took only %.2f s" % took
    assert [r["offset"] for r in first + rest] == list(range(15))


def test_batch_size_arrays(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"b%d" % i for i in range(10)])
    msgs = truth(kafka, t, 10)
    out = Out(srv, t, batchSize=4)
    got = out.records(10)
    out.quiet(0.5)
    assert out.frames, "no frames"
    for f in out.frames:
        assert isinstance(f, list), \
            "with batchSize=4 a frame is an array: %r" % (f,)
        assert 1 <= len(f) <= 4, [rid(r) for r in f]
    assert [r["offset"] for r in got] == list(range(10))
    for g, m in zip(got, msgs):
        assert g == expected_string_record(m)
        assert_order(g)
    assert max(len(f) for f in out.frames) > 1, \
        "10 records were waiting, yet every frame held one: %r" % (
            [len(f) for f in out.frames],)
    for text in out.texts:
        assert_compact(text)


def test_batch_size_one_sends_objects(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"o%d" % i for i in range(3)])
    out = Out(srv, t, batchSize=1)
    out.records(3)
    assert all(isinstance(f, dict) for f in out.frames), out.frames


def test_batch_size_multi_partition(srv, kafka):
    t = new_topic(kafka, 3)
    produce(kafka, t, [{"value": b"%d" % i, "partition": i % 3}
                       for i in range(30)])
    out = Out(srv, t, batchSize=5)
    got = out.records(30)
    for f in out.frames:
        assert isinstance(f, list) and 1 <= len(f) <= 5, f
    for p in range(3):
        assert [r["offset"] for r in got if r["partition"] == p] == \
            list(range(10))


def test_client_specific_limits_by_group(proxy, kafka):
    lg = "lim-" + uuid.uuid4().hex[:10]
    p = proxy(config=(
        "kafka.ws.proxy.consumer.limits.client-specific-limits = [\n"
        "  { group-id = \"%s\", messages-per-second = 4, batch-size = 3 }\n"
        "]\n" % lg))
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"l%d" % i for i in range(12)])

    other = Out(p, t)  # no limits for its group
    got = other.records(12)
    assert all(isinstance(f, dict) for f in other.frames)
    assert [r["offset"] for r in got] == list(range(12))

    lim = Out(p, t, groupId=lg)
    first = lim.records(1)
    t0 = time.monotonic()
    rest = lim.records(11, timeout=30)
    took = time.monotonic() - t0
    assert [r["offset"] for r in first + rest] == list(range(12))
    for f in lim.frames:
        assert isinstance(f, list) and 1 <= len(f) <= 3, \
            "group batch-size 3: frame %r" % (f,)
    # burst of 4, then 4/s: the 12th about 2 s after the first
    assert took >= 1.4, "12 records at 4/s took only %.2f s" % took
    p.assert_alive()


def test_default_messages_per_second(proxy, kafka):
    p = proxy(env={"WSPROXY_CONSUMER_RATELIMIT_DEFAULT_MESSAGES_PER_SEC": "5"})
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"d%d" % i for i in range(12)])
    out = Out(p, t)
    out.records(1)
    t0 = time.monotonic()
    out.records(11, timeout=30)
    took = time.monotonic() - t0
    # burst of 5, then 5/s: the 12th about 1.4 s after the first
    assert took >= 1.0, "12 records at 5/s took only %.2f s" % took
    p.assert_alive()


# -- 12. offset reset and isolation level -------------------------------------

def test_offset_reset_latest(srv, kafka):
    t = new_topic(kafka, 1)
    prod = Prod(kafka)
    prod.send(t, [{"value": b"old-%d" % i} for i in range(5)])
    out = Out(srv, t, offsetResetStrategy="LATEST")
    seen = []
    deadline = time.monotonic() + 30
    n = 0
    # Probe until the socket is assigned and positioned at the end.
    while not seen and time.monotonic() < deadline:
        prod.send(t, [{"value": b"probe-%d" % n}])
        n += 1
        obj = out.frame(0.5)
        if obj is not None:
            seen += obj if isinstance(obj, list) else [obj]
    assert seen, "nothing delivered with offsetResetStrategy=latest"
    prod.send(t, [{"value": b"new-%d" % i} for i in range(5)])
    # read until new-4 arrives
    got = list(seen)
    end = time.monotonic() + 20
    while not any(r["value"]["value"] == "new-4" for r in got) and \
            time.monotonic() < end:
        obj = out.frame(end - time.monotonic())
        if obj is None:
            break
        got += obj if isinstance(obj, list) else [obj]
    vals = [r["value"]["value"] for r in got]
    assert not [v for v in vals if v.startswith("old-")], vals
    assert vals[0].startswith("probe-"), vals
    assert vals[-5:] == ["new-%d" % i for i in range(5)], vals
    offs = [r["offset"] for r in got]
    assert offs == list(range(offs[0], offs[0] + len(offs))), offs
    assert offs[0] >= 5


def expect_close(out, timeout=20.0):
    """Read until the server's close frame; returns its code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            f = out._next(deadline - time.monotonic())
        except websocket.WebSocketConnectionClosedException:
            raise AssertionError("TCP closed without a close frame")
        if f is None:
            break
        op, data = f
        if op == websocket.ABNF.OPCODE_CLOSE:
            out.closed = True
            return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
    raise AssertionError("no close frame within %.0f s" % timeout)


def test_offset_reset_none(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"n0", b"n1", b"n2"])
    g = "none-" + uuid.uuid4().hex[:10]
    out = Out(srv, t, groupId=g, offsetResetStrategy="none")
    assert expect_close(out, 10) == 1011  # no committed offset to start from
    out.close()
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": g,
                  "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(t, 0, 1)], asynchronous=False)
    finally:
        c.close()
    out = Out(srv, t, groupId=g, offsetResetStrategy="None")
    assert [r["offset"] for r in out.records(2)] == [1, 2]


def test_member_leaves_while_client_keeps_tcp_open(srv, kafka):
    """The proxy ends a consumer socket (here: an unmasked frame, 1002) and
    the client keeps its TCP connection open: the socket lingers until the
    client's EOF (up to server.lingering-timeout, 5 s), but its consumer
    leaves the group as soon as the proxy's last bytes are out. Regression:
    the member stayed until the lingering ended, and a fresh consumer's
    commit in that group failed with UNKNOWN_MEMBER_ID."""
    t = new_topic(kafka, 1)
    out = Out(srv, t)
    wait_group(kafka, out.group, 1, 1)
    out.ws.sock.sendall(b"\x81\x02hi")  # unmasked: a protocol error
    assert expect_close(out, 10) == 1002
    t0 = time.monotonic()
    assert wait_until(lambda: not group_members(kafka, out.group)[1], 10, 0.1)
    assert time.monotonic() - t0 < 3, "left %.1f s after the close" % (
        time.monotonic() - t0)
    out.ws.sock.close()


def test_offset_reset_earliest_is_default(srv, kafka):
    t = new_topic(kafka, 1)
    produce_values(kafka, t, [b"e0", b"e1"])
    out = Out(srv, t)
    assert [r["offset"] for r in out.records(2)] == [0, 1]


def _transactions(kafka, topic):
    """Offsets: a0..a2 aborted (0-2), marker 3, c0..c2 committed (4-6),
    marker 7."""
    tp = Producer({"bootstrap.servers": kafka.bootstrap,
                   "transactional.id": "tx-" + uuid.uuid4().hex})
    tp.init_transactions(30)
    tp.begin_transaction()
    for i in range(3):
        tp.produce(topic, value=b"a%d" % i)
    tp.flush(30)
    tp.abort_transaction(30)
    tp.begin_transaction()
    for i in range(3):
        tp.produce(topic, value=b"c%d" % i)
    tp.commit_transaction(30)


def test_isolation_levels(srv, kafka):
    t = new_topic(kafka, 1)
    _transactions(kafka, t)
    rc = Out(srv, t, isolationLevel="read_committed")
    got = rc.records(3)
    assert [(r["offset"], r["value"]["value"]) for r in got] == \
        [(4, "c0"), (5, "c1"), (6, "c2")], [rid(r) for r in got]
    rc.quiet(1.5)

    for params in ({}, {"isolationLevel": "read_uncommitted"}):
        ru = Out(srv, t, **params)
        got = ru.records(6)
        assert [(r["offset"], r["value"]["value"]) for r in got] == \
            [(0, "a0"), (1, "a1"), (2, "a2"), (4, "c0"), (5, "c1"),
             (6, "c2")], (params, [rid(r) for r in got])
        ru.quiet(1.0)


# -- 13. a client that never reads --------------------------------------------

def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RawOut:
    """A /socket/out client on a plain socket that reads only on demand."""

    def __init__(self, port, path, rcvbuf=4096):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(30)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(http_request_bytes("GET", path, [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", new_key()),
            ("Sec-WebSocket-Version", "13")]))
        head = b""
        while b"\r\n\r\n" not in head:
            ch = self.s.recv(1)
            assert ch, "closed during the handshake: %r" % head
            head += ch
        self.status = int(head.split(b" ", 2)[1])
        self.buf = bytearray()
        self.pos = 0

    def _need(self, n, deadline):
        while len(self.buf) - self.pos < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.s.settimeout(left)
            data = self.s.recv(1 << 20)
            if not data:
                raise AssertionError("connection closed by the proxy")
            if self.pos > (1 << 20):
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += data

    def _take(self, n, deadline):
        self._need(n, deadline)
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def message(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            b0, b1 = self._take(2, deadline)
            op, n = b0 & 0xF, b1 & 0x7F
            assert not b1 & 0x80, "server frame masked"
            if n == 126:
                n = struct.unpack("!H", self._take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8, deadline))[0]
            payload = self._take(n, deadline)
            if op == OP_PING:
                self.s.sendall(build_frame(OP_PONG, payload))
                continue
            if op == OP_PONG:
                continue
            assert op != OP_CLOSE, "proxy closed: %r" % payload
            assert op == OP_TEXT and b0 & 0x80, "frame op %d fin %d" % (
                op, b0 >> 7)
            return payload

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


@pytest.mark.slow
def test_client_that_never_reads_has_bounded_memory(proxy, kafka):
    p = proxy(env={"WSPROXY_MAX_BUFFERED_SEND_BYTES": "1 MiB"})
    big = new_topic(kafka, 1)
    small = new_topic(kafka, 1)
    n, size = 5000, 10000  # 50 MB
    prod = Prod(kafka, **{"linger.ms": 20})
    prod.send(big, [{"value": (b"%06d:" % i).ljust(size, b"x")}
                    for i in range(n)])
    time.sleep(0.5)
    rss0 = _rss_kb(p.proc.pid)
    peak = [rss0]
    halt = threading.Event()

    def sample():
        while not halt.is_set():
            peak[0] = max(peak[0], _rss_kb(p.proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    path, _ = out_path(big, clientId="hog")
    slow = RawOut(p.port, path)
    try:
        assert slow.status == 101
        t_up = time.monotonic()
        # another socket on another topic is served promptly meanwhile
        time.sleep(1.0)
        other = Out(p, small)
        prod.send(small, [{"value": b"s%d" % i} for i in range(5)])
        t0 = time.monotonic()
        got = other.records(5, timeout=15)
        took = time.monotonic() - t0
        assert [r["value"]["value"] for r in got] == \
            ["s%d" % i for i in range(5)]
        assert took < 5.0, "the other socket waited %.1f s" % took
        other.close()
        while time.monotonic() - t_up < 6.0:
            time.sleep(0.2)
        halt.set()
        sampler.join(2)
        p.assert_alive()
        grew_mb = (peak[0] - rss0) / 1024.0
        # Expected: about the send bound (1 MiB) plus ~1 MB prefetch; a
        # proxy that buffered the topic would grow by the topic's 50 MB.
        assert grew_mb < 32, \
            "RSS grew by %.0f MB for a client that never reads (base %d kB)" \
            % (grew_mb, rss0)

        # now the slow client reads everything, in order
        slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for i in range(n):
            rec = json.loads(slow.message(timeout=30))
            assert rec["offset"] == i, (i, rec.get("offset"))
            v = rec["value"]["value"]
            assert len(v) == size and v.startswith("%06d:" % i), (i, v[:20])
        p.assert_alive()
    finally:
        halt.set()
        slow.close()


# -- 14. still alive ----------------------------------------------------------

def test_zz_proxy_still_healthy(srv):
    st, _, body = srv.get("/healthcheck")
    assert st == 200, body
    srv.assert_alive()


def test_a_socket_with_nothing_to_read_stays_in_its_group(proxy, kafka):
    """librdkafka drops a member that has not polled for max.poll.interval.ms
    (5 min by default; 8 s here). The proxy polled only when an event came,
    so a socket that had read everything was dropped, rejoined and got every
    uncommitted record again."""
    p = proxy(config="kafka.ws.proxy.consumer.kafka-client-properties {\n"
                     "  max.poll.interval.ms = 8000\n"
                     "  session.timeout.ms = 6000\n}\n")
    t = new_topic(kafka)
    produce_values(kafka, t, [b"a%d" % i for i in range(5)])
    o = Out(p, t, autoCommit="false")
    assert [r["offset"] for r in o.records(5)] == list(range(5))
    o.quiet(14)  # nothing new, and nothing redelivered
    produce_values(kafka, t, [b"later"])
    r = o.records(1)[0]
    assert (r["offset"], r["value"]["value"]) == (5, "later")
    o.quiet(1)
    assert "maximum poll interval" not in p.stderr()


def test_a_deleted_topic_closes_the_socket_1011(proxy, kafka):
    """Before, a socket whose topic was deleted stayed open and silent (the
    log got a warning per partition per second), and the proxy then hung on
    SIGTERM: librdkafka 2.0.2 to 2.6.0 never finish destroying a consumer
    whose partition left the cluster unless its queue is emptied (#4724)."""
    p = proxy()
    t = new_topic(kafka, partitions=2)
    produce_values(kafka, t, [b"a", b"b"], partition=0)
    o = Out(p, t)
    o.records(2)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.delete_topics([t])[t].result(30)
    t0 = time.monotonic()
    f = o._next(30)  # metadata cached up to 10 s, looked at again, then 3 s
    assert f is not None, "still open 30 s after the topic was deleted"
    op, data = f
    assert op == websocket.ABNF.OPCODE_CLOSE, (op, data[:100])
    assert int.from_bytes(data[:2], "big") == 1011
    assert data[2:] == b"the topic was deleted"
    assert time.monotonic() - t0 < 25
    rc, took = p.stop()
    assert rc == 0 and took < 5, (rc, took)


@pytest.mark.parametrize("strategy", [None, COOPERATIVE])
def test_sockets_that_close_while_their_consumer_joins(proxy, kafka,
                                                        strategy):
    """Sockets that close at once or while their consumer joins its group:
    the consumer's last rebalance events come after it began to close, when
    librdkafka no longer names the rebalance protocol (a NULL that crashed
    the proxy). The proxy keeps serving."""
    p = proxy(config="kafka.ws.proxy.consumer.kafka-client-properties "
              "{\n  partition.assignment.strategy = \"%s\"\n}\n" % strategy
              if strategy else "")
    t = new_topic(kafka, 2)
    for i in range(32):
        path, _ = out_path(t, clientId="j%d" % i)
        ws = websocket.create_connection(p.ws_url(path), timeout=30)
        time.sleep(i % 8 * 0.06)
        ws.close()
    produce_values(kafka, t, [b"after"], partition=0)
    out = Out(p, t, autoCommit="false")
    assert out.records(1)[0]["offset"] == 0
    out.close()
    p.assert_alive()
