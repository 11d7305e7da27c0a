"""The test harness itself: the real Kafka broker started by test/kafka/broker.py."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import ROOT, start_broker, read_assigned
import broker as kafka_broker


def create_topic(bootstrap, name, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                       replication_factor=1)])
    fs[name].result(timeout=30)


def produce(bootstrap, topic, messages):
    """Produce (key, value) pairs with acks=all; returns delivery reports."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "linger.ms": 0, "message.timeout.ms": 30000})
    reports = []

    def dr(err, msg):
        reports.append((err, msg.topic(), msg.partition(), msg.offset()))

    for k, v in messages:
        p.produce(topic, key=k, value=v, on_delivery=dr)
    left = p.flush(30)
    assert left == 0, "%d messages not delivered" % left
    assert all(e is None for e, *_ in reports), reports
    return reports


def consume_all(bootstrap, topic, n, partitions=(0,), timeout=30):
    return [(m.key(), m.value()) for m in
            read_assigned(bootstrap, topic, n, partitions, timeout=timeout)]


def test_broker_metadata(kafka):
    assert kafka.bootstrap.startswith("127.0.0.1:")
    assert kafka.is_running()
    md = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(
        timeout=10)
    assert list(md.brokers) == [1]
    b = md.brokers[1]
    assert (b.host, b.port) == ("127.0.0.1", kafka.port)


def test_produce_consume_roundtrip(kafka):
    topic = "harness-" + uuid.uuid4().hex[:12]
    create_topic(kafka.bootstrap, topic)
    msgs = [(b"k%d" % i, b"value-%d" % i) for i in range(20)]
    reports = produce(kafka.bootstrap, topic, msgs)
    assert sorted(r[3] for r in reports) == list(range(20))
    assert consume_all(kafka.bootstrap, topic, 20) == msgs


def test_auto_create_is_off(kafka):
    """The test broker does not auto-create topics (as configured)."""
    topic = "nope-" + uuid.uuid4().hex[:12]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    md = admin.list_topics(topic=topic, timeout=10)
    assert md.topics[topic].error is not None
    assert topic not in admin.list_topics(timeout=10).topics


@pytest.mark.slow
def test_restart_keeps_ports_and_data():
    b = start_broker()
    try:
        bootstrap, port = b.bootstrap, b.port
        topic = "restart-" + uuid.uuid4().hex[:12]
        create_topic(bootstrap, topic)
        produce(bootstrap, topic, [(b"a", b"before restart")])
        t0 = time.monotonic()
        b.restart()
        assert time.monotonic() - t0 < 120
        assert b.bootstrap == bootstrap and b.port == port
        assert kafka_broker.metadata_ok(bootstrap, timeout=5)
        produce(bootstrap, topic, [(b"b", b"after restart")])
        assert consume_all(bootstrap, topic, 2) == [
            (b"a", b"before restart"), (b"b", b"after restart")]
        b.kill()
        assert not b.is_running()
        assert not kafka_broker.metadata_ok(bootstrap, timeout=2)
        # A SIGKILLed broker comes back too (unclean shutdown recovery).
        b.start()
        assert consume_all(bootstrap, topic, 2)[0] == (b"a", b"before restart")
        rc = b.stop()
        assert rc is not None
    finally:
        b.cleanup()
    assert not os.path.exists(b.workdir)


@pytest.mark.slow
def test_command_line_start_stop(tmp_path):
    d = str(tmp_path / "kb")
    script = os.path.join(ROOT, "test", "kafka", "broker.py")
    r = subprocess.run([sys.executable, script, "start", d],
                       capture_output=True, text=True, timeout=150)
    try:
        assert r.returncode == 0, r.stderr
        bootstrap = r.stdout.strip().splitlines()[-1]
        assert bootstrap == open(os.path.join(d, "bootstrap")).read().strip()
        assert kafka_broker.metadata_ok(bootstrap, timeout=5)
    finally:
        r2 = subprocess.run([sys.executable, script, "stop", d],
                            capture_output=True, text=True, timeout=60)
    assert r2.returncode == 0, r2.stderr
    assert not os.path.exists(os.path.join(d, "broker.pid"))
    assert not kafka_broker.metadata_ok(bootstrap, timeout=2)


def test_missing_jars_reported(tmp_path):
    with pytest.raises(kafka_broker.BrokerError) as ei:
        kafka_broker.KafkaBroker(libs=str(tmp_path / "nothing"))
    assert "KWP_KAFKA_LIBS" in str(ei.value)
