"""--dev: the embedded in-process Kafka-protocol cluster (README "Try it")."""

import json
import uuid

import pytest

from conftest import read_assigned
import websocket
from wsraw import WsRaw, http_request_bytes, new_key
from confluent_kafka import Producer


@pytest.fixture(scope="module")
def dev(proxy_mod):
    return proxy_mod(args=["--dev"], bootstrap=None,
                     env={"WSPROXY_KAFKA_BOOTSTRAP_HOSTS": None})


def test_dev_mode_warns_loudly(dev):
    err = dev.stderr().lower()
    assert "dev mode" in err, dev.stderr_tail()
    assert "not durable" in err, dev.stderr_tail()


def test_dev_mode_health(dev):
    st, h, body = dev.get("/healthcheck")
    assert st == 200 and body == b'{ "response": "I\'m healthy" }'


def brokers(dev):
    st, h, body = dev.get("/kafka/cluster/info", timeout=15)
    assert st == 200, body
    return json.loads(body)


def test_dev_mode_three_brokers(dev):
    bs = brokers(dev)
    assert len(bs) == 3, bs
    assert [b["id"] for b in bs] == sorted(b["id"] for b in bs)
    assert len({b["id"] for b in bs}) == 3
    for b in bs:
        assert set(b) == {"id", "host", "port", "rack"}
        assert isinstance(b["port"], int) and 0 < b["port"] < 65536
    st, _, body2 = dev.get("/admin/kafka/info", timeout=15)
    assert st == 200 and json.loads(body2) == bs


def test_dev_mode_echo_endpoint(dev):
    ws = websocket.create_connection(dev.ws_url("/echo"), timeout=5)
    try:
        ws.send("dev echo")
        assert ws.recv() == "dev echo"
    finally:
        ws.close()


def test_dev_mode_produce_consume(dev):
    bootstrap = ",".join("%s:%d" % (b["host"], b["port"]) for b in brokers(dev))
    topic = "dev-" + uuid.uuid4().hex[:12]
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0,
                  "message.timeout.ms": 20000})
    reports = []
    p.produce(topic, key=b"k", value=b"hello dev mode",
              on_delivery=lambda err, msg: reports.append(
                  (err, msg.partition(), msg.offset())))
    assert p.flush(25) == 0, "message not delivered"
    assert len(reports) == 1 and reports[0][0] is None, reports
    _, partition, offset = reports[0]
    got = read_assigned(bootstrap, topic, 1, partitions=(partition,),
                        start=offset)
    assert got, "message not read back within 20 s"
    assert (got[0].key(), got[0].value()) == (b"k", b"hello dev mode")



@pytest.mark.parametrize("path", ["/socket/in", "/socket/out"])
@pytest.mark.parametrize("name", ["a%22b", "a%5Cb", "a%01b", "%2E%2E", "a%20b",
                                  "x" * 250])
def test_dev_mode_refuses_topic_names_kafka_refuses(dev, path, name):
    """The in-process cluster creates any topic it is asked for: a name with
    a quote or a backslash came back unescaped in the result and record
    frames (invalid JSON, or a forged field). Such names are now refused
    before the upgrade, as a real broker refuses them."""
    c = WsRaw(dev.port)
    with c:
        c.send_raw(http_request_bytes(
            "GET", "%s?clientId=c&topic=%s" % (path, name), [
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", new_key()),
                ("Sec-WebSocket-Version", "13")]))
        r = c.read_response(body=None)
        assert r.status == 400, (r.status, r.body)
        msg = json.loads(r.body)["message"]
        assert msg.startswith("Request param 'topic' is not a valid Kafka "
                              "topic name: "), msg
