"""/healthcheck and the cluster-info endpoints against the real broker."""

import json
import threading
import time

import pytest

from conftest import assert_json_error, closed_port, http_get, start_broker

HEALTHY = b'{ "response": "I\'m healthy" }'


@pytest.fixture(scope="module")
def srv(proxy_mod):
    return proxy_mod()


def test_healthcheck_exact_body(srv):
    st, h, body = srv.get("/healthcheck")
    assert st == 200
    assert body == HEALTHY
    assert h.get("content-type", "").split(";")[0] == "application/json"
    assert int(h.get("content-length")) == len(HEALTHY)


def test_healthcheck_head(srv):
    st, h, body = srv.get("/healthcheck", method="HEAD")
    assert st == 200 and body == b""
    assert h.get("content-type", "").split(";")[0] == "application/json"


@pytest.mark.parametrize("path", ["/kafka/cluster/info", "/admin/kafka/info"])
def test_cluster_info_real_broker(srv, kafka, path):
    st, h, body = srv.get(path, timeout=15)
    assert st == 200, body
    assert h.get("content-type", "").split(";")[0] == "application/json"
    assert json.loads(body) == [{"id": 1, "host": "127.0.0.1",
                                 "port": kafka.port, "rack": None}]
    # the exact shape: keys id, host, port, rack in that order
    assert list(json.loads(body)[0].keys()) == ["id", "host", "port", "rack"]


def test_cluster_info_head(srv, kafka):
    st, h, body = srv.get("/kafka/cluster/info", method="HEAD", timeout=15)
    assert st == 200 and body == b""


def test_cluster_info_concurrent_requests(srv, kafka):
    results = []

    def one():
        try:
            results.append(srv.get("/kafka/cluster/info", timeout=15)[0])
        except Exception as e:  # noqa
            results.append(repr(e))

    ts = [threading.Thread(target=one) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert results == [200] * 20, results


def test_cluster_unreachable_503_and_health_still_200(proxy):
    port = closed_port()
    p = proxy(bootstrap="127.0.0.1:%d" % port,
              env={"WSPROXY_KAFKA_METADATA_TIMEOUT": "2s"})
    # /healthcheck does not depend on Kafka
    assert p.get("/healthcheck")[0] == 200
    box = {}

    def info():
        t0 = time.monotonic()
        box["resp"] = http_get(p.port, "/kafka/cluster/info", timeout=20)
        box["took"] = time.monotonic() - t0

    t = threading.Thread(target=info)
    t.start()
    # while cluster info waits for Kafka, the server keeps answering
    time.sleep(0.3)
    for _ in range(5):
        t0 = time.monotonic()
        st, _, body = p.get("/healthcheck", timeout=5)
        assert st == 200 and body == HEALTHY
        assert time.monotonic() - t0 < 1.0, "healthcheck blocked by cluster info"
    t.join(25)
    assert "resp" in box, "cluster info did not answer within 20 s"
    st, h, body = box["resp"]
    msg = assert_json_error(st, h, body, 503,
                            prefix="Kafka cluster is unreachable: ")
    assert len(msg) > len("Kafka cluster is unreachable: ")
    assert box["took"] <= 10.0, "503 after %.1f s (metadata timeout 2 s)" % box["took"]
    assert box["took"] >= 1.0, "503 after only %.2f s" % box["took"]
    # admin alias too
    st, h, body = p.get("/admin/kafka/info", timeout=15)
    assert_json_error(st, h, body, 503, prefix="Kafka cluster is unreachable: ")
    assert p.get("/healthcheck")[0] == 200


@pytest.mark.slow
def test_cluster_info_follows_broker_restart(proxy):
    b = start_broker()
    try:
        p = proxy(bootstrap=b.bootstrap,
                  env={"WSPROXY_KAFKA_METADATA_TIMEOUT": "2s"})
        st, _, body = p.get("/kafka/cluster/info", timeout=15)
        assert st == 200 and json.loads(body)[0]["port"] == b.port
        b.stop()
        st, h, body = p.get("/kafka/cluster/info", timeout=15)
        assert_json_error(st, h, body, 503, prefix="Kafka cluster is unreachable: ")
        assert p.get("/healthcheck")[0] == 200
        b.start()
        deadline = time.monotonic() + 30
        while True:
            st, _, body = p.get("/kafka/cluster/info", timeout=15)
            if st == 200:
                break
            assert time.monotonic() < deadline, "no recovery after restart"
            time.sleep(0.5)
        assert json.loads(body) == [{"id": 1, "host": "127.0.0.1",
                                     "port": b.port, "rack": None}]
    finally:
        b.cleanup()


def test_ready_says_when_the_session_state_topic_is_gone(proxy, kafka):
    """Deleting the state topic read as "Kafka is unreachable" on /ready,
    with Kafka up; the writes say which it is. The node now creates a deleted
    state topic again (test_sessions), so the status shows while it cannot:
    here a topic whose name collides with it ('.' and '_' are one in Kafka's
    metric names) makes CreateTopics fail until that topic goes. A node
    stuck there still stops at once on SIGTERM."""
    import json as _json
    import uuid as _uuid
    from confluent_kafka.admin import AdminClient, NewTopic
    from conftest import wait_until
    tag = _uuid.uuid4().hex[:8]
    name, blocker = "ss.gone." + tag, "ss_gone_" + tag
    p = proxy(env={"WSPROXY_SESSION_STATE_TOPIC": name})
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})

    def status():
        st, _, body = p.get("/ready")
        return _json.loads(body)["status"] if st == 503 else "ready"

    # The node may create its topic again between the two requests: then the
    # blocker collides and the pair is tried again.
    for _ in range(5):
        admin.delete_topics([name])[name].result(30)
        try:
            admin.create_topics([NewTopic(blocker, 1, 1)])[blocker].result(30)
            break
        except Exception:
            time.sleep(1)
    else:
        pytest.fail("could not put a colliding topic in place")
    assert wait_until(lambda: status() == "session state topic unavailable",
                      30), status()
    assert "collides with existing topic" in p.stderr(), p.stderr_tail()
    admin.delete_topics([blocker])[blocker].result(30)
    assert wait_until(lambda: status() == "ready", 40), \
        (status(), p.stderr_tail())
    admin.delete_topics([name])[name].result(30)
    admin.create_topics([NewTopic(blocker, 1, 1)])[blocker].result(30)
    assert wait_until(lambda: status() == "session state topic unavailable",
                      30), status()
    rc, took = p.stop()
    assert rc == 0 and took < 5, (rc, took)
    admin.delete_topics([blocker])[blocker].result(30)
