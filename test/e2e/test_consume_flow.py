"""/socket/out under volume and failures: a backlog read at full speed
(regression: librdkafka 2.0's fetcher idled a second per queue), a client
that never reads while 1 GB flows in, and a broker restart with manual
commits."""

import json
import socket
import threading
import time

import pytest
import websocket
from confluent_kafka import Producer

from conftest import create_topic, proxy_is_asan, start_broker, wait_until
from test_consume import group_members, wait_group
from wsraw import WsRaw


def fill(bootstrap, topic, count, size, partition=None):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                  "batch.size": 1048576, "queue.buffering.max.kbytes": 262144,
                  "compression.type": "none"})
    value = b"x" * size
    for i in range(count):
        while True:
            try:
                if partition is None:
                    p.produce(topic, value=value)
                else:
                    p.produce(topic, value=value, partition=partition)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def split_frames(buf):
    """The opcodes of the whole server frames at the start of @buf and the
    bytes they take, walking only the frame headers."""
    pos, ops = 0, []
    while len(buf) - pos >= 2:
        n, hdr = buf[pos + 1] & 0x7F, 2
        if n == 126:
            if len(buf) - pos < 4:
                break
            n, hdr = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
        elif n == 127:
            if len(buf) - pos < 10:
                break
            n, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
        if len(buf) - pos < hdr + n:
            break
        ops.append(buf[pos] & 0x0F)
        pos += hdr + n
    return ops, pos


def read_frames_fast(sock, count, timeout=30):
    """Count @count server frames, reading big chunks and walking only the
    frame headers (a Python JSON parse per record would be the bottleneck
    and hide the proxy's pace). Returns the pauses over 0.5 s between reads
    that brought data."""
    sock.settimeout(timeout)
    buf, seen, gaps = b"", 0, []
    prev = time.monotonic()
    while seen < count:
        chunk = sock.recv(1 << 20)
        assert chunk, "connection closed after %d frames" % seen
        now = time.monotonic()
        if now - prev > 0.5:
            gaps.append(round(now - prev, 2))
        prev = now
        buf += chunk
        ops, pos = split_frames(buf)
        assert all(op == 1 for op in ops), "not a text frame"
        seen += len(ops)
        buf = buf[pos:]
    return gaps


@pytest.mark.parametrize("count,size,config", [
    (30000, 1000, None),
    (80000, 100, None),
    # A record bound far below one fetch response: the queue is over it
    # after every fetch (regression: the restart watched only bytes).
    (40000, 100, "kafka.ws.proxy.consumer.kafka-client-properties "
                 "{ queued.min.messages = 1000 }\n")],
    ids=["1KB", "100B", "record-bound"])
def test_backlog_is_read_without_fetch_stalls(proxy, kafka, count, size,
                                              config):
    """A backlog in 4 partitions, read by a fast client: librdkafka 2.0
    stops fetching once the socket's queue is full (4 MB or 10,000 records
    by default) and looks again only up to a second later, which shows as
    pauses of about a second; the proxy restarts the fetcher instead."""
    topic = create_topic(kafka.bootstrap, 4, prefix="backlog")
    fill(kafka.bootstrap, topic, count, size)
    p = proxy(config=config)
    c = WsRaw(p.port)
    c.handshake("/socket/out?clientId=bl&topic=%s" % topic)
    t0 = time.monotonic()
    gaps = read_frames_fast(c.sock, count)
    took = time.monotonic() - t0
    c.close()
    assert len(gaps) <= 1, "%d records took %.1f s with pauses %s: " \
        "fetch stalls" % (count, took, gaps)


@pytest.mark.slow
def test_sixteen_sockets_read_a_backlog_without_pauses(proxy, kafka):
    """16 sockets of one group read a 16-partition backlog together. The
    fetcher restart used to seek again every 10 ms while no records came, and
    a seek discards the fetch in flight: once a fetch took longer than that
    (a loaded machine, many consumers), sockets went without records for up
    to 0.9 s. The group forms on an empty topic (joining has pauses of its
    own), then the backlog is written, then read; gaps are measured across
    all sockets."""
    n, per = 16, 15000
    topic = create_topic(kafka.bootstrap, n, prefix="many")
    p = proxy()
    group = "many-" + topic
    socks = []
    for i in range(n):
        c = WsRaw(p.port)
        c.handshake("/socket/out?clientId=m%d&groupId=%s&topic=%s" % (
            i, group, topic))
        socks.append(c)
    wait_group(kafka, group, n, n)
    fill(kafka.bootstrap, topic, n * per, 1000)
    # Each record comes once (no rebalance while they are read): counting
    # frames is enough, and cheap enough for Python to keep up.
    count, arrivals, errors = [0], [], []
    lock = threading.Lock()

    def reader(c):
        c.sock.settimeout(0.5)
        buf = b""
        deadline = time.monotonic() + 60
        try:
            while count[0] < n * per and time.monotonic() < deadline:
                try:
                    chunk = c.sock.recv(1 << 20)
                except socket.timeout:
                    continue
                assert chunk, "connection closed"
                now = time.monotonic()
                buf += chunk
                ops, pos = split_frames(buf)
                buf = buf[pos:]
                with lock:
                    arrivals.append(now)
                    count[0] += ops.count(1)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=reader, args=(c,)) for c in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for c in socks:
        c.close()
    assert not errors, errors[:3]
    assert count[0] == n * per, "%d of %d records" % (count[0], n * per)
    arrivals.sort()
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:]))[-3:]
    assert gaps[-1] < 0.3, "%d records took %.1f s; longest pauses %s" % (
        n * per, arrivals[-1] - arrivals[0], [round(g, 2) for g in gaps])


def test_client_that_never_reads_while_1gb_flows_in(proxy, kafka):
    """The proxy stops taking records once the socket's send queue is full,
    and pauses the partitions 2 s later: its memory stays flat whatever flows
    into the topic, and other sockets keep being served."""
    topic = create_topic(kafka.bootstrap, 2, prefix="flood")
    other = create_topic(kafka.bootstrap, 1, prefix="other")
    p = proxy()
    c = WsRaw(p.port)
    c.handshake("/socket/out?clientId=sleepy&topic=%s" % topic)
    time.sleep(0.5)
    base = rss_kb(p.proc.pid)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(p.proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample)
    t.start()
    try:
        fill(kafka.bootstrap, topic, 16384, 65536)  # 1 GiB
        # Another socket still gets its records promptly.
        fill(kafka.bootstrap, other, 3, 10)
        ws = websocket.create_connection(
            p.ws_url("/socket/out?clientId=awake&topic=%s" % other),
            timeout=15)
        got = [json.loads(ws.recv()) for _ in range(3)]
        assert [r["offset"] for r in got] == [0, 1, 2]
        ws.close()
        time.sleep(1)
    finally:
        done.set()
        t.join()
    grown = peak[0] - base
    assert grown < 64 * 1024, "RSS grew by %d KiB with a client that never " \
        "reads" % grown
    # Now the client reads: the stream resumes where it stopped, in order.
    c.sock.settimeout(30)
    offsets = {0: -1, 1: -1}
    for _ in range(200):
        f = c.recv_frame()
        r = json.loads(f.payload)
        assert r["offset"] == offsets[r["partition"]] + 1
        offsets[r["partition"]] = r["offset"]
    c.close()
    p.assert_alive()


@pytest.mark.skipif(proxy_is_asan(), reason="ASan's allocator: no glibc trim")
def test_memory_goes_back_after_sockets_that_never_read_close(proxy, kafka):
    """Sockets that never read fill their bounded buffers; once they are
    closed that memory is free, but glibc kept it in its arenas for reuse:
    the proxy stayed at 85 MB with no socket open (16 sockets; 16 MB after a
    malloc_trim). The main thread now gives it back within about 10 s."""
    topic = create_topic(kafka.bootstrap, 8, prefix="churn")
    fill(kafka.bootstrap, topic, 120000, 1000)
    # No pause while the test runs: a socket held for pause-after (2 s) gets
    # its partitions paused, and what its consumer holds then depends on how
    # fast the broker fetched until then (7 MiB for the 8 sockets in a loaded
    # CI run, 37 to 61 MiB alone). Held without a pause, each fills its
    # bounds (1 MiB to send, 4 MB prefetched) whatever the load.
    p = proxy(env={"WSPROXY_CONSUMER_PAUSE_AFTER": "10 minutes"})
    base = rss_kb(p.proc.pid)
    socks = []
    for i in range(8):
        c = WsRaw(p.port)
        c.handshake("/socket/out?clientId=c%d&groupId=churn-%s&topic=%s" % (
            i, topic, topic))
        socks.append(c)
    wait_group(kafka, "churn-" + topic, 8, 8)
    held = [0]

    def full():
        held[0] = rss_kb(p.proc.pid)
        return held[0] - base > 20 * 1024

    filled = wait_until(full, 20, 0.5)
    for c in socks:
        c.close()
    held = held[0]
    assert filled, "only %d KiB for 8 full sockets" % (held - base)
    after = []

    def back():
        after.append(rss_kb(p.proc.pid))
        return after[-1] - base < 12 * 1024

    assert wait_until(back, 25, 1.0), \
        "RSS %d KiB at start, %d KiB with the sockets, still %s KiB after " \
        "they closed" % (base, held, after[-5:])
    print("RSS %d KiB at start, %d with the sockets, %d after" % (
        base, held, after[-1]))
    p.assert_alive()


@pytest.mark.parametrize("pause_after", ["2 seconds", "10 minutes"])
def test_a_member_that_never_reads_does_not_hold_up_a_rebalance(
        proxy, kafka, pause_after):
    """A socket over its send bound stops taking records from its
    consumer, but its consumer's own queue (rebalances, commit results) is
    still served, paused partitions or not. With a pause-after far beyond
    the test: regression, when records and rebalances shared one queue a
    held socket's rebalance waited for the pause (and without a pause for
    max.poll.interval.ms, 5 minutes) when a second member joined."""
    topic = create_topic(kafka.bootstrap, 2, prefix="held")
    # 8 MB in each partition, well past what a's send bound and socket
    # buffers take: b's partition still has records for b, whichever it is.
    for part in (0, 1):
        fill(kafka.bootstrap, topic, 8000, 1000, partition=part)
    p = proxy(env={"WSPROXY_CONSUMER_PAUSE_AFTER": pause_after})
    group = "held-" + topic
    a = WsRaw(p.port)
    a.handshake("/socket/out?clientId=a&groupId=%s&topic=%s" % (group, topic))
    wait_group(kafka, group, 1, 2)
    time.sleep(1)  # a's send queue fills: it is held
    b = websocket.create_connection(
        p.ws_url("/socket/out?clientId=b&groupId=%s&topic=%s" % (group, topic)),
        timeout=30)
    t0 = time.monotonic()
    wait_group(kafka, group, 2, 2, timeout=30)
    took = time.monotonic() - t0
    assert took < 15, "the rebalance took %.1f s" % took
    got = json.loads(b.recv())
    assert got["topic"] == topic and got["partition"] in (0, 1)
    took = time.monotonic() - t0
    assert took < 15, "b's first record came after %.1f s" % took
    b.close()
    # a reads now: each partition's records in order, none skipped.
    a.sock.settimeout(30)
    last = {}
    for _ in range(3000):
        r = json.loads(a.recv_frame().payload)
        assert r["offset"] == last.get(r["partition"], -1) + 1, (r, last)
        last[r["partition"]] = r["offset"]
    a.close()
    p.assert_alive()


@pytest.mark.slow
def test_broker_restart_mid_stream_with_manual_commits(proxy):
    """Records the client committed are never delivered again and none is
    skipped, across a broker stop and restart on the same socket and a
    reconnect after it. Regression: commits sent before the outage were
    retried by librdkafka after newer ones and moved the group's offset
    back (the reconnect resumed at 200)."""
    b = start_broker()
    topic = create_topic(b.bootstrap, 1, prefix="restart")
    fill(b.bootstrap, topic, 200, 100)
    # A stack big enough for the burst: every commit finds its record.
    p = proxy(bootstrap=b.bootstrap, ready=True,
              env={"WSPROXY_CH_MAX_STACK_SIZE": "10000"})
    q = "/socket/out?clientId=rc&groupId=rcg&topic=%s&autoCommit=false" % topic
    ws = websocket.create_connection(p.ws_url(q), timeout=60)
    seen, committed_at = [], {}
    outage = [None, None]

    def read(n):
        for _ in range(n):
            r = json.loads(ws.recv())
            assert "error" not in r, r
            seen.append(r["offset"])
            ws.send(json.dumps({"wsProxyMessageId": r["wsProxyMessageId"]}))
            committed_at.setdefault(r["offset"], time.monotonic())

    read(200)
    outage[0] = time.monotonic()
    b.stop()
    time.sleep(3)
    b.restart()
    outage[1] = time.monotonic()
    fill(b.bootstrap, topic, 200, 100)
    read(200 + 0)
    # Records redelivered after the restart may only be ones whose commit
    # was sent while the broker was away or being restarted.
    while len(set(seen)) < 400:
        read(1)
    ws.close()
    assert sorted(set(seen)) == list(range(400)), "skipped records"
    dups = {o for o in seen if seen.count(o) > 1}
    for o in dups:
        assert committed_at[o] >= outage[0] - 1, \
            "offset %d was committed before the outage and delivered " \
            "again" % o
    # After a reconnect nothing committed comes back (once the node is ready
    # again: its heartbeats go through the restarted broker), once the closed
    # socket's consumer has left: a new member joining while the old one
    # still writes its last commits makes a rebalance that can refuse them
    # (an older generation), and then records come again (at least once),
    # which is another test's subject. Under CI load that overlap happened.
    assert wait_until(lambda: group_members(b, "rcg")[1] == [], 40), \
        group_members(b, "rcg")
    p.wait_ready()
    fill(b.bootstrap, topic, 1, 100)
    ws = websocket.create_connection(p.ws_url(q), timeout=30)
    r = json.loads(ws.recv())
    assert r["offset"] == 400, r
    ws.close()
    p.assert_alive()
    b.cleanup()
