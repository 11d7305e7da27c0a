"""/socket/in against the real broker: what the proxy acknowledged is what
Kafka holds (bytes, headers, partition, offset), under volume, rate limits,
a client that never reads, and a broker restart."""

import json
import socket
import struct
import time

import pytest
import websocket

from conftest import consume_all, create_topic, start_broker


def new_topic(bootstrap, partitions=3):
    return create_topic(bootstrap, partitions, prefix="flow")


def read_all(bootstrap, topic, expect, timeout=30):
    return consume_all(bootstrap, topic, expect, timeout)


def connect(proxy, query):
    return websocket.create_connection(proxy.ws_url("/socket/in?" + query),
                                       timeout=30)


def send(ws, value, fmt="string", key=None, kfmt="string", headers=None,
         mid=None):
    msg = {"value": {"value": value, "format": fmt}}
    if key is not None:
        msg["key"] = {"value": key, "format": kfmt}
    if headers is not None:
        msg["headers"] = headers
    if mid is not None:
        msg["messageId"] = mid
    ws.send(json.dumps(msg))


def recv(ws):
    return json.loads(ws.recv())


@pytest.fixture(scope="module")
def prod(proxy_mod, kafka):
    return proxy_mod()


def test_round_trip_key_value_headers(prod, kafka):
    topic = new_topic(kafka.bootstrap)
    ws = connect(prod, "clientId=rt&topic=%s&keyType=string&valType=json" %
                 topic)
    send(ws, {"a": [1, 2, {"b": None}]}, fmt="json", key="k-1",
         headers=[{"key": "h1", "value": "v1"}, {"key": "h2", "value": "é"}],
         mid="m-1")
    ack = recv(ws)
    ws.close()
    assert ack["topic"] == topic
    assert ack["messageId"] == "m-1" and ack["clientMessageId"] == "m-1"
    [m] = read_all(kafka.bootstrap, topic, 1)
    assert (m.partition(), m.offset()) == (ack["partition"], ack["offset"])
    assert m.key() == b"k-1"
    assert m.value() == b'{"a":[1,2,{"b":null}]}'
    assert m.headers() == [("h1", b"v1"), ("h2", "é".encode())]
    assert m.timestamp()[1] == ack["timestamp"]


KEY_CASES = [
    ("string", "héllo", "héllo".encode()),
    ("json", [1, "x", None], b'[1,"x",null]'),
    ("int", -2147483648, struct.pack(">i", -2147483648)),
    ("short", -32768, struct.pack(">h", -32768)),
    ("long", 9223372036854775807, struct.pack(">q", 9223372036854775807)),
    ("double", -1.25e300, struct.pack(">d", -1.25e300)),
    ("float", 3.5, struct.pack(">f", 3.5)),
    ("bytearray", "AAEC/w==", b"\x00\x01\x02\xff"),
    ("avro", "AgQ=", b"\x02\x04"),
]


@pytest.mark.parametrize("fmt,value,raw", KEY_CASES,
                         ids=[c[0] for c in KEY_CASES])
def test_keys_of_every_format_type(prod, kafka, fmt, value, raw):
    topic = new_topic(kafka.bootstrap, partitions=1)
    ws = connect(prod, "clientId=fmt&topic=%s&keyType=%s&valType=%s" % (
        topic, fmt, fmt))
    send(ws, value, fmt=fmt, key=value, kfmt=fmt, mid=1)
    ack = recv(ws)
    ws.close()
    assert "error" not in ack, ack
    [m] = read_all(kafka.bootstrap, topic, 1)
    assert m.key() == raw and m.value() == raw


def test_instance_id_required_with_sessions(proxy, kafka):
    p = proxy(env={"WSPROXY_PRODUCER_SESSIONS_ENABLED": "true"})
    topic = new_topic(kafka.bootstrap, partitions=1)
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        connect(p, "clientId=c&topic=" + topic)
    assert ei.value.status_code == 400
    assert json.loads(ei.value.resp_body)["message"] == (
        "Request param 'instanceId' is required when producer sessions are "
        "enabled on the proxy server.")
    connect(p, "clientId=c&instanceId=i1&topic=" + topic).close()


@pytest.mark.slow
def test_20000_pipelined_messages_in_order(prod, kafka):
    n = 20000
    topic = new_topic(kafka.bootstrap, partitions=3)
    ws = connect(prod, "clientId=bulk&topic=%s&valType=string" % topic)
    for i in range(n):
        ws.send('{"value":{"value":"v%d","format":"string"},"messageId":%d}'
                % (i, i))
    acks = [recv(ws) for _ in range(n)]
    ws.close()
    assert [a["messageId"] for a in acks] == list(range(n))
    assert all("error" not in a for a in acks)
    msgs = read_all(kafka.bootstrap, topic, n, timeout=60)
    assert len(msgs) == n
    got = {(m.partition(), m.offset()): m.value() for m in msgs}
    assert got == {(a["partition"], a["offset"]): b"v%d" % a["messageId"]
                   for a in acks}


def test_rate_limit_spaces_messages(proxy, kafka):
    p = proxy(env={"WSPROXY_PRODUCER_RATELIMIT_DEFAULT_MESSAGES_PER_SEC": "10"})
    topic = new_topic(kafka.bootstrap, partitions=1)
    ws = connect(p, "clientId=slow&topic=" + topic)
    t0 = time.monotonic()
    for i in range(30):
        send(ws, "m%d" % i, mid=i)
    last = None
    for i in range(30):
        assert recv(ws)["messageId"] == i
        last = time.monotonic() - t0
    ws.close()
    # One second's worth at once, then 10/s: the 30th ack comes after about
    # 2 s, never before 1.8 s; nothing is dropped.
    assert 1.8 <= last < 10, last
    assert len(read_all(kafka.bootstrap, topic, 30)) == 30


def test_rate_limited_socket_is_not_idle_while_the_proxy_holds_its_messages(
        proxy, kafka):
    """Messages the proxy has read but holds back for the rate limit are not
    the client's silence. Before, the idle timeout closed the socket (1001)
    after 2 s here and dropped the 20-odd messages still waiting in the
    proxy: they never reached Kafka and got no result."""
    p = proxy(env={"WSPROXY_PRODUCER_RATELIMIT_DEFAULT_MESSAGES_PER_SEC": "10",
                   "WSPROXY_WS_IDLE_TIMEOUT": "2 seconds"})
    topic = new_topic(kafka.bootstrap, partitions=1)
    ws = connect(p, "clientId=burst&topic=" + topic)
    frames = b"".join(_masked_text_frame(json.dumps(
        {"value": {"value": "m%d" % i}, "messageId": i}).encode())
        for i in range(40))
    ws.sock.sendall(frames)  # one write: the proxy reads them all at once
    try:
        got = [recv(ws)["messageId"] for _ in range(40)]
    finally:
        ws.close()
    assert got == list(range(40))
    assert len(read_all(kafka.bootstrap, topic, 40)) == 40


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _masked_text_frame(payload):
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload  # zero mask: payload unchanged


@pytest.mark.slow
def test_client_that_never_reads_acks_has_bounded_memory(proxy, kafka):
    p = proxy(env={"WSPROXY_MAX_BUFFERED_SEND_BYTES": "1 MiB"})
    topic = new_topic(kafka.bootstrap, partitions=3)
    s = socket.create_connection(("127.0.0.1", p.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(("GET /socket/in?clientId=hog&topic=%s HTTP/1.1\r\nHost: x\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % topic).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0]
    rss0 = _rss_kb(p.proc.pid)
    frame = _masked_text_frame(json.dumps(
        {"value": {"value": "x" * 1000, "format": "string"},
         "messageId": "id-" + "y" * 200}).encode())
    chunk = frame * 64
    s.settimeout(5.0)
    sent, peak, limit = 0, rss0, 400 * 1024 * 1024
    try:
        while sent < limit:
            s.sendall(chunk)
            sent += len(chunk)
            if sent % (8 << 20) < len(chunk):
                peak = max(peak, _rss_kb(p.proc.pid))
    except socket.timeout:
        pass  # the proxy stopped reading: backpressure reached the client
    time.sleep(1.0)
    peak = max(peak, _rss_kb(p.proc.pid))
    p.assert_alive()
    assert sent < limit, "the proxy never pushed back"
    assert peak - rss0 < 150 * 1024, (rss0, peak, sent)
    s.close()


@pytest.mark.slow
def test_broker_restart_mid_stream(proxy):
    b = start_broker()
    topic = new_topic(b.bootstrap, partitions=1)
    p = proxy(bootstrap=b.bootstrap,
              env={"WSPROXY_KAFKA_PRODUCER_DELIVER_TIMEOUT_MS": "8000"})
    ws = connect(p, "clientId=rs&topic=" + topic)
    n = 0

    def pump(count, pause=0.0):
        nonlocal n
        for _ in range(count):
            send(ws, "m%d" % n, mid=n)
            n += 1
            if pause:
                time.sleep(pause)

    pump(200)
    b.stop()
    pump(50, pause=0.01)  # these wait for the broker, or time out
    b.restart()
    pump(200)
    ws.settimeout(60)
    results = {}
    while len(results) < n:
        r = recv(ws)
        results[r["messageId"]] = r
    ws.close()
    p.assert_alive()
    assert sorted(results) == list(range(n))
    ok = {i for i, r in results.items() if "error" not in r}
    assert len(ok) >= 400, "most records should survive a restart"
    for r in results.values():
        if "error" in r:
            assert r["error"] and isinstance(r["message"], str), r
    msgs = read_all(b.bootstrap, topic, len(ok), timeout=60)
    stored = [m.value().decode() for m in msgs]
    missing = {"m%d" % i for i in ok} - set(stored)
    assert not missing, "acked but not in Kafka: %s" % sorted(missing)[:10]
    assert len(stored) == len(set(stored)), "duplicates in Kafka"
    b.cleanup()


def test_topic_that_shows_up_during_the_upgrade_is_usable(prod, kafka):
    """The upgrade request comes before the topic exists, and the topic is
    created a second later (as on a busy broker, where a new topic took over
    0.5 s to show up in the metadata: `make bench` got 400 "does not exist"
    for a topic whose creation Kafka had acknowledged). The proxy keeps
    looking for 3 s before refusing; it used to give up after 0.5 s."""
    import threading
    import uuid
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = "late-" + uuid.uuid4().hex[:10]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    result = {}

    def upgrade():
        try:
            result["ws"] = connect(prod, "clientId=late&topic=" + topic)
        except Exception as e:  # noqa: BLE001 (asserted below)
            result["error"] = e

    t0 = time.monotonic()
    t = threading.Thread(target=upgrade)
    t.start()
    time.sleep(1.0)
    for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result(timeout=30)
    t.join(30)
    assert "error" not in result, "upgrade refused: %r" % result["error"]
    ws = result["ws"]
    assert time.monotonic() - t0 >= 1.0
    send(ws, "x", mid=1)
    r = recv(ws)
    assert r.get("offset") == 0 and "error" not in r, r
    ws.close()


def test_unknown_topic_is_refused_within_a_few_seconds(prod):
    """Looking again for a missing topic is bounded: 3 s of waits."""
    t0 = time.monotonic()
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        connect(prod, "clientId=c&topic=never-" + str(time.monotonic_ns()))
    assert e.value.status_code == 400
    took = time.monotonic() - t0
    assert 2.5 < took < 10, took


def test_topic_created_a_moment_ago_is_usable(prod, kafka):
    """A topic created just before the upgrade is usable at once. `make
    bench` once got 400 "does not exist" here (the topic not yet in the
    broker's metadata); this test did not reproduce that race on demand, so
    it checks the behaviour, not the fix."""
    for _ in range(5):
        topic = new_topic(kafka.bootstrap, partitions=3)
        ws = connect(prod, "clientId=fresh&topic=" + topic)
        send(ws, "x", mid=1)
        r = recv(ws)
        assert r.get("offset") == 0 and "error" not in r, r
        ws.close()


def _read_until_close(ws, timeout=30):
    """Every result frame until the close frame; (results, close code)."""
    out = []
    ws.settimeout(timeout)
    while True:
        op, data = ws.recv_data(control_frame=True)
        if op == websocket.ABNF.OPCODE_CLOSE:
            return out, int.from_bytes(data[:2], "big") if data else None
        if op == websocket.ABNF.OPCODE_TEXT:
            out.append(json.loads(data))


def test_sigterm_sends_every_result_before_closing(proxy, kafka):
    """On SIGTERM a producer socket stops reading and closes (1001) once
    every record it read has its result. Before, it closed at once: records
    Kafka stored got no result, so a client resending them duplicated them."""
    import signal
    import threading
    p = proxy()
    topic = new_topic(kafka.bootstrap, partitions=3)
    socks = [connect(p, "clientId=term%d&topic=%s" % (j, topic))
             for j in range(3)]
    got = [None] * 3

    def pump(j):
        ws = socks[j]
        try:
            for i in range(4000):
                send(ws, "s%d-%d" % (j, i), mid=i)
        except Exception:
            pass  # the proxy stopped reading or closed

    senders = [threading.Thread(target=pump, args=(j,)) for j in range(3)]
    for t in senders:
        t.start()
    first = recv(socks[0])  # traffic is flowing
    p.send_signal(signal.SIGTERM)
    for j in range(3):
        got[j] = _read_until_close(socks[j])
    got[0] = ([first] + got[0][0], got[0][1])
    for t in senders:
        t.join(10)
    assert p.wait(15) == 0
    acks = sum(len(g[0]) for g in got)
    stored = {m.value() for m in consume_all(kafka.bootstrap, topic, acks, 10)}
    for j in range(3):
        results, code = got[j]
        assert code == 1001
        ids = [r["messageId"] for r in results]
        assert ids == list(range(len(ids))), "results not one per message, in order"
        assert all("error" not in r for r in results), results[-3:]
        acked = {b"s%d-%d" % (j, i) for i in ids}
        mine = {v for v in stored if v.startswith(b"s%d-" % j)}
        assert mine == acked, "stored without a result: %d" % len(mine - acked)


def test_sigterm_with_kafka_down_answers_not_delivered(proxy):
    """Kafka away at SIGTERM: the records still owed get not_delivered when
    the grace period is over, then the 1001. Before, the socket closed at
    once and they got nothing."""
    import signal
    b = start_broker()
    topic = new_topic(b.bootstrap, partitions=1)
    p = proxy(bootstrap=b.bootstrap,
              env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "2 seconds"})
    p.wait_ready()
    ws = connect(p, "clientId=down&topic=" + topic)
    send(ws, "first", mid=0)
    assert "error" not in recv(ws)
    b.kill()
    for i in range(1, 201):
        send(ws, "m%d" % i, mid=i)
    time.sleep(0.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    results, code = _read_until_close(ws)
    assert code == 1001
    assert [r["messageId"] for r in results] == list(range(1, 201))
    assert {r.get("error") for r in results} == {"not_delivered"}, results[:2]
    assert 1.5 <= time.monotonic() - t0 < 6
    assert p.wait(15) == 0
    # grace + 1 s for the session state's last records (it was grace + 5 s)
    took = time.monotonic() - t0
    assert took < 2 + 2, "exit %.1f s after SIGTERM (grace 2 s)" % took
