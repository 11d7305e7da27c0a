"""Graceful shutdown on SIGTERM / SIGINT (docs/api.md close code 1001,
503 "Server is shutting down")."""

import json
import signal
import socket
import threading
import time


from wsraw import OP_TEXT, Closed, WsRaw, build_frame, http_request_bytes


def ws_client(p, msg=b"hello"):
    c = WsRaw(p.port)
    c.handshake("/echo")
    c.send_text(msg)
    f = c.recv_frame()
    assert (f.opcode, f.payload) == (OP_TEXT, msg)
    return c


def connect_after_shutdown(port):
    """What a new client gets during shutdown: 'refused', '503', or a
    description of anything else."""
    try:
        c = WsRaw(port, timeout=3)
    except (ConnectionRefusedError, ConnectionResetError):
        return "refused"
    except socket.timeout:
        return "connect timed out"
    with c:
        try:
            c.send_raw(http_request_bytes("GET", "/healthcheck"))
            r = c.read_response(timeout=3)
        except Closed as e:
            return "closed without a response (%s)" % e
        except socket.timeout:
            return "no response within 3 s"
        if r.status == 503:
            try:
                body = json.loads(r.body)
            except ValueError:
                return "503 with a non-JSON body %r" % r.body
            if body == {"message": "Server is shutting down"} and \
                    r.headers.get("content-type", "").startswith("application/json"):
                return "503"
            return "503 with body %r" % r.body
        return "status %d" % r.status


def test_sigterm_closes_clients_1001_and_exits_0(proxy):
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "5s"})
    clients = [ws_client(p, b"client %d" % i) for i in range(10)]
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    for c in clients:
        code, _ = c.expect_close(5)
        assert code == 1001
        c.send_close(1001)
    for c in clients:
        assert c.wait_tcp_close(5), "server kept TCP open after the close handshake"
        c.close()
    rc = p.wait(10)
    took = time.monotonic() - t0
    assert rc == 0, "exit code %r\n%s" % (rc, p.stderr_tail())
    assert took < 5.0, "exit took %.1f s although every client answered" % took


def test_sigterm_without_clients_exits_fast(proxy):
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "5s"})
    rc, took = p.stop(signal.SIGTERM, timeout=10)
    assert rc == 0, p.stderr_tail()
    assert took < 2.0, "exit took %.1f s with nothing open" % took


def test_sigterm_closes_idle_http_keepalive(proxy):
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "5s"})
    c = WsRaw(p.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200
        rc, took = p.stop(signal.SIGTERM, timeout=10)
        assert rc == 0
        assert took < 3.0, "idle keep-alive connection held the shutdown %.1f s" % took
        assert c.wait_tcp_close(1)


def test_sigint_exits_0(proxy):
    p = proxy()
    c = ws_client(p)
    with c:
        p.send_signal(signal.SIGINT)
        code, _ = c.expect_close(5)
        assert code == 1001
        c.send_close(1001)
        rc = p.wait(10)
        assert rc == 0, p.stderr_tail()


def test_new_connections_refused_after_sigterm(proxy):
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "3s"})
    # a client that never answers the close keeps the server in shutdown
    stuck = ws_client(p)
    with stuck:
        p.send_signal(signal.SIGTERM)
        code, _ = stuck.expect_close(3)
        assert code == 1001
        assert p.alive(), "exited before the grace period with a client open"
        outcome = connect_after_shutdown(p.port)
        assert outcome in ("refused", "503"), \
            "new connection during shutdown: %s" % outcome
        rc = p.wait(10)
        assert rc == 0, p.stderr_tail()


def test_unresponsive_client_bounded_by_grace_period(proxy):
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "2s"})
    # one that never reads nor answers, with the server's send buffer full
    deaf = WsRaw(p.port)
    deaf.handshake("/echo")
    deaf.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = b"z" * 200000
    sent = 0
    deaf.sock.settimeout(0.5)
    try:
        while sent < 4_000_000:  # echoes pile up: the client never reads
            deaf.sock.sendall(build_frame(2, big))
            sent += len(big)
    except (socket.timeout, OSError):
        pass
    # and one that reads but does not answer the close
    silent = ws_client(p)
    # and one stuck in the middle of its HTTP request
    half = WsRaw(p.port)
    half.send_raw(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    code, _ = silent.expect_close(3)
    assert code == 1001
    rc = p.wait(2 + 5)
    took = time.monotonic() - t0
    for c in (deaf, silent, half):
        c.close()
    assert rc is not None, "still running %.1f s after SIGTERM (grace 2 s)" % took
    assert rc == 0, p.stderr_tail()
    assert took >= 1.5, "exited after %.1f s, before the 2 s grace period" % took
    assert took <= 2 + 3, "exited after %.1f s (grace 2 s)" % took


def test_sigterm_during_traffic(proxy):
    """Clients busy echoing when SIGTERM arrives: each gets a close 1001 and
    no frame after it; the process exits 0."""
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "5s"})
    clients = [ws_client(p) for _ in range(10)]
    stop = threading.Event()
    errors = []

    def pump(c):
        i = 0
        try:
            while not stop.is_set():
                if not c.send_text(b"msg %d" % i):
                    break
                i += 1
                time.sleep(0.002)
        except OSError:
            pass

    ts = [threading.Thread(target=pump, args=(c,)) for c in clients]
    for t in ts:
        t.start()
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    try:
        for c in clients:
            try:
                code, _ = c.expect_close(5)
                if code != 1001:
                    errors.append("close code %s" % code)
            except AssertionError as e:
                errors.append(str(e)[:300])
    finally:
        stop.set()
        for t in ts:
            t.join(5)
    for c in clients:
        c.send_close(1001)
    rc = p.wait(10)
    for c in clients:
        c.close()
    assert not errors, errors
    assert rc == 0, p.stderr_tail()


def test_sigterm_with_pending_kafka_request_bounded_by_grace(proxy):
    """A cluster-info request waiting on an unreachable Kafka (metadata
    timeout 8 s) must not hold the shutdown past the 2 s grace period."""
    from conftest import closed_port
    p = proxy(bootstrap="127.0.0.1:%d" % closed_port(),
              env={"WSPROXY_KAFKA_METADATA_TIMEOUT": "8s",
                   "WSPROXY_SHUTDOWN_GRACE_PERIOD": "2s"})
    box = {}

    def info():
        c = WsRaw(p.port, timeout=15)
        with c:
            c.send_raw(http_request_bytes("GET", "/kafka/cluster/info"))
            try:
                r = c.read_response(timeout=15)
                box["r"] = (r.status, r.body)
            except (Closed, socket.timeout) as e:
                box["r"] = repr(e)

    t = threading.Thread(target=info)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(15)
    took = time.monotonic() - t0
    t.join(15)
    assert rc == 0, p.stderr_tail()
    assert took <= 2 + 3, "exit %.1f s after SIGTERM (grace 2 s) with a " \
        "Kafka request pending; client got %r" % (took, box.get("r"))
    if isinstance(box.get("r"), tuple):
        assert box["r"][0] == 503, box["r"]


def test_sigterm_while_the_session_topic_is_being_set_up(proxy):
    """Kafka unreachable at startup: the session handler is still looking
    for its state topic (each metadata call waits up to
    kafka-client.metadata-timeout, 8 s here). A SIGTERM then waited for the
    call in progress; it now ends it within a fraction of a second."""
    from conftest import closed_port
    p = proxy(bootstrap="127.0.0.1:%d" % closed_port(),
              env={"WSPROXY_KAFKA_METADATA_TIMEOUT": "8s"})
    time.sleep(1.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(20)
    took = time.monotonic() - t0
    assert rc == 0, p.stderr_tail()
    assert took < 1.5, "exit %.1f s after SIGTERM" % took
