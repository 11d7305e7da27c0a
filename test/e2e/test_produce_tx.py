"""/socket/in with transactional=true: exactly-once against the real broker.
Results come only after the transaction committed; a fenced producer's
records are never visible to read_committed consumers."""

import json
import time
import uuid

import pytest
import websocket
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

TX_ENV = {"WSPROXY_PRODUCER_SESSIONS_ENABLED": "true",
          "WSPROXY_PRODUCER_EXACTLY_ONCE_ENABLED": "true"}


def new_topic(bootstrap):
    name = "tx-" + uuid.uuid4().hex[:10]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, 1, 1)]).values():
        f.result(timeout=30)
    return name


def read_committed(bootstrap, topic, expect, timeout=20):
    c = Consumer({"bootstrap.servers": bootstrap,
                  "group.id": "chk-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            out += [m.value() for m in c.consume(100, timeout=0.5)
                    if not m.error()]
        out += [m.value() for m in c.consume(100, timeout=2.0)
                if not m.error()]
    finally:
        c.close()
    return out


def url(proxy, topic, instance="i1"):
    return proxy.ws_url("/socket/in?clientId=txc&instanceId=%s&"
                        "transactional=true&topic=%s" % (instance, topic))


def test_transactional_records_seen_by_read_committed(proxy, kafka):
    p = proxy(env=dict(TX_ENV, WSPROXY_PRODUCER_TRANSACTION_MAX_MESSAGES="4"))
    topic = new_topic(kafka.bootstrap)
    ws = websocket.create_connection(url(p, topic), timeout=30)
    for i in range(10):
        ws.send(json.dumps({"value": {"value": "t%d" % i}, "messageId": i}))
    acks = [json.loads(ws.recv()) for _ in range(10)]
    ws.close()
    assert [a["messageId"] for a in acks] == list(range(10))
    assert all("error" not in a for a in acks), acks
    # An ack means committed: a read_committed consumer sees every record.
    assert read_committed(kafka.bootstrap, topic, 10) == [
        b"t%d" % i for i in range(10)]


def test_fenced_producer_gets_errors_and_close_1011(proxy, kafka):
    p = proxy(env=TX_ENV)
    topic = new_topic(kafka.bootstrap)
    a = websocket.create_connection(url(p, topic), timeout=30)
    a.send(json.dumps({"value": {"value": "first"}, "messageId": "a1"}))
    assert "error" not in json.loads(a.recv())
    b = websocket.create_connection(url(p, topic), timeout=30)  # fences a
    a.send(json.dumps({"value": {"value": "fenced"}, "messageId": "a2"}))
    r = json.loads(a.recv())
    assert r["error"] == "transaction_aborted" and r["messageId"] == "a2", r
    op, frame = a.recv_data(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame[:2], "big") == 1011
    b.send(json.dumps({"value": {"value": "second"}, "messageId": "b1"}))
    assert "error" not in json.loads(b.recv())
    b.close()
    assert read_committed(kafka.bootstrap, topic, 2) == [b"first", b"second"]


def test_transactional_requires_configuration(proxy, kafka):
    p = proxy()
    topic = new_topic(kafka.bootstrap)
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        websocket.create_connection(url(p, topic), timeout=10)
    assert ei.value.status_code == 400
    assert "not configured to allow producer transactions" in \
        json.loads(ei.value.resp_body)["message"]
