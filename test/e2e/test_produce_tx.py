"""/socket/in with transactional=true: exactly-once against the real broker.
Results come only after the transaction committed; a fenced producer's
records are never visible to read_committed consumers."""

import json
import socket
import struct
import time

import pytest
import websocket
from conftest import consume_all, create_topic

TX_ENV = {"WSPROXY_PRODUCER_SESSIONS_ENABLED": "true",
          "WSPROXY_PRODUCER_EXACTLY_ONCE_ENABLED": "true"}


def new_topic(bootstrap):
    return create_topic(bootstrap, partitions=1, prefix="tx")


def read_committed(bootstrap, topic, expect, timeout=20):
    return [m.value() for m in consume_all(bootstrap, topic, expect, timeout,
                                           isolation="read_committed")]


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


def test_reconnect_at_once_does_not_abort_what_the_closed_socket_sent(
        proxy, kafka):
    """What a transactional socket sent is committed when it closes, even
    when the client reconnects with the same ids at once. Before, the new
    socket's producer fenced the closing one before its last commit and a
    read_committed consumer saw none of the 3000 records."""
    p = proxy(env=dict(TX_ENV, WSPROXY_PRODUCER_TRANSACTION_MAX_MESSAGES="100000",
                       WSPROXY_PRODUCER_TRANSACTION_INTERVAL="4 seconds"))
    topic = new_topic(kafka.bootstrap)
    a = websocket.create_connection(url(p, topic), timeout=30)
    pad = "x" * 1000  # enough that the last commit takes a while
    for i in range(3000):
        a.send(json.dumps({"value": {"value": "first-%d %s" % (i, pad)}}))
    time.sleep(0.05)  # being read by the proxy, in an open transaction
    # A connection reset, and the client is back at once (a close handshake
    # gave the old commit time enough). What the proxy had not read yet is
    # lost with the connection; what it had read must be committed.
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    a.sock.close()
    b = websocket.create_connection(url(p, topic), timeout=30)
    b.send(json.dumps({"value": {"value": "second"}, "messageId": "b1"}))
    r = json.loads(b.recv())
    assert "error" not in r, r
    b.close()
    got = read_committed(kafka.bootstrap, topic, 3001, timeout=10)
    assert got[-1] == b"second", got[-1:]
    first = got[:-1]
    assert first, "none of the reset socket's records was committed"
    assert first == [b"first-%d %s" % (i, pad.encode())
                     for i in range(len(first))]
