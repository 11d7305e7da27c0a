"""Lingering close (docs/api.md "Closing"): whenever the proxy ends a
connection while the client is still sending, it finishes its writes, shuts
its write side, then reads and discards what the client still sends until
EOF or server.lingering-timeout. A bare close() with unread input makes the
kernel answer with a reset, and the client loses what it had not read yet
(the end of an echo, the close frame, an HTTP error response).

The clients here read LATE: they send everything first, then read."""

import socket
import time

import pytest

from wsraw import (OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, Closed, WsRaw,
                   build_frame, close_payload, http_request_bytes)

MIB = 1 << 20


@pytest.fixture(scope="module")
def lp(proxy_mod):
    """One proxy with the default limits (1 MiB messages, 8 MiB bodies)."""
    return proxy_mod()


@pytest.fixture(autouse=True)
def _alive(request):
    yield
    if "lp" in request.fixturenames:
        request.getfixturevalue("lp").assert_alive()


def connect(p, path="/echo", timeout=10.0):
    c = WsRaw(p.port, timeout=timeout)
    c.handshake(path)
    return c


def send_slowly(c, data, chunk=64 * 1024, delay=0.002):
    """sendall in @chunk pieces; returns the OSError that stopped it (EPIPE,
    ECONNRESET: the proxy reset the connection) or None."""
    try:
        for i in range(0, len(data), chunk):
            c.sock.sendall(data[i:i + chunk])
            if delay:
                time.sleep(delay)
    except OSError as e:
        return e
    return None


def read_to_eof(c, timeout=5.0):
    """Everything the proxy still sends, then its FIN. Fails on a reset (the
    bytes still in flight were lost) or when the TCP close does not come."""
    deadline = time.monotonic() + timeout
    while not c.eof:
        try:
            c._fill(deadline)
        except Closed as e:
            assert "reset" not in str(e), \
                "connection reset after %d bytes: %s" % (len(c.buf), e)
        except socket.timeout:
            pytest.fail("no TCP close within %.1f s" % timeout)
    return c.buf


def frames_in(c):
    """Parse the frames in c.buf (read by read_to_eof)."""
    out = []
    while c.buf:
        try:
            out.append(c.recv_frame(0.1))
        except Closed:
            pytest.fail("the stream ends inside a frame after %d frame(s) "
                        "(%r): bytes were lost" % (len(out), out[:2]))
    return out


# -- WebSocket ---------------------------------------------------------------

def test_echo_then_close_then_ping_read_late(lp):
    """The conformance case: a 256 KiB message, the close frame, then a ping
    after the close; the client reads only afterwards. The whole echo and
    the proxy's close frame must arrive, then a FIN, not a reset."""
    payload = bytes(range(256)) * 1024  # 256 KiB
    for i in range(3):
        with connect(lp) as c:
            assert c.send_raw(build_frame(OP_BINARY, payload))
            assert c.send_raw(build_frame(OP_CLOSE, close_payload(1000)))
            time.sleep(0.05)
            assert c.send_raw(build_frame(OP_PING, b"after the close"))
            time.sleep(0.3)
            read_to_eof(c)
            frames = frames_in(c)
            ops = [f.opcode for f in frames]
            assert ops == [OP_BINARY, OP_CLOSE], "round %d: %r" % (i, frames)
            assert frames[0].payload == payload, "round %d: echo differs" % i
            assert frames[1].close_code == 1000


def test_echo_then_close_then_half_close_read_late(lp):
    """The client sends 6 MiB of messages and its close frame, shuts its
    write side (FIN) and only then reads: the proxy sees the EOF while
    echoes are still queued (more than the kernel's buffers hold), which
    must still go out, with the close frame."""
    payload = bytes(range(256)) * 4096  # 1 MiB
    n = 6
    for i in range(3):
        with connect(lp) as c:
            c.sock.settimeout(20)
            assert c.send_raw(build_frame(OP_BINARY, payload) * n +
                              build_frame(OP_CLOSE, close_payload(1000)))
            c.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.3)
            read_to_eof(c, timeout=20)
            got = len(c.buf)
            frames = frames_in(c)
            assert [f.opcode for f in frames] == [OP_BINARY] * n + [OP_CLOSE], \
                "round %d: %d bytes: %r" % (i, got, frames[:2])
            assert all(f.payload == payload for f in frames[:n])


def test_too_big_frame_1009_read_late(proxy):
    """A 1 MiB + 1 frame (over the default max-message-size) sent in full,
    then read: the send must not fail with EPIPE/ECONNRESET, and the 1009
    close frame must be read. The proxy saw the frame's length in its header
    and closed while the payload was still coming: without lingering the
    kernel reset the connection (about 4 runs in 10 on a fresh node)."""
    p = proxy()
    frame = build_frame(OP_BINARY, b"\x5a" * (MIB + 1))
    for i in range(10):
        with connect(p) as c:
            err = send_slowly(c, frame)
            assert err is None, "round %d: send failed: %r" % (i, err)
            time.sleep(0.05)
            read_to_eof(c)
            frames = frames_in(c)
            assert [f.opcode for f in frames] == [OP_CLOSE], \
                "round %d: %r" % (i, frames)
            assert frames[0].close_code == 1009


def test_protocol_error_while_client_streams(lp):
    """An unmasked frame (1002) in the middle of a stream of frames: the
    client's later frames are discarded, not answered with a reset."""
    good = build_frame(OP_TEXT, b"t" * 1000)
    with connect(lp) as c:
        data = build_frame(OP_TEXT, b"u" * 100, mask=False) + good * 2000
        err = send_slowly(c, data, chunk=16 * 1024)
        assert err is None, "send failed: %r" % err
        read_to_eof(c)
        frames = frames_in(c)
        assert [f.opcode for f in frames] == [OP_CLOSE], frames
        assert frames[0].close_code == 1002


# -- HTTP --------------------------------------------------------------------

def test_413_while_client_sends_its_body_read_late(lp):
    """A POST declaring a body over max-request-body-size gets 413 at once;
    the client still sends all of its 8 MiB + 1 body, then reads."""
    body = b"b" * (8 * MIB + 1)
    with WsRaw(lp.port, timeout=10) as c:
        err = send_slowly(c, http_request_bytes("POST", "/healthcheck",
                                                body=body), chunk=256 * 1024)
        assert err is None, "send failed: %r" % err
        r = c.read_response()
        assert r.status == 413, r
        assert b"Request body too large" in r.body
        read_to_eof(c)


def test_431_upgrade_with_huge_header_read_late(lp):
    """An upgrade with a 1 MiB header (over max-header-size 8 KiB) is
    answered 431 while the client still sends it."""
    with WsRaw(lp.port, timeout=10) as c:
        req = c.handshake_request("/echo", headers={"X-Big": "h" * MIB})
        err = send_slowly(c, req, chunk=32 * 1024)
        assert err is None, "send failed: %r" % err
        r = c.read_response()
        assert r.status == 431, r
        read_to_eof(c)


def test_413_survives_sigterm_while_client_sends(proxy):
    """SIGTERM while a client still sends the body of a request answered 413:
    the connection goes on lingering (bounded by the grace period) instead
    of being closed at once, so the client's send completes and it reads
    the 413 (the shutdown used to close every HTTP connection at once)."""
    import signal
    p = proxy(env={"WSPROXY_SHUTDOWN_GRACE_PERIOD": "5s"})
    body = b"b" * (8 * MIB + 1)
    req = http_request_bytes("POST", "/healthcheck", body=body)
    with WsRaw(p.port, timeout=10) as c:
        assert c.send_raw(req[:1024])
        time.sleep(0.2)  # the 413 is out: the proxy now discards
        p.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        err = send_slowly(c, req[1024:], chunk=256 * 1024, delay=0.005)
        assert err is None, "send failed: %r" % err
        r = c.read_response()
        assert r.status == 413, r
        read_to_eof(c)
    assert p.wait(10) == 0, p.stderr_tail()


# -- Bounds ------------------------------------------------------------------

def test_endless_sender_cut_off_after_lingering_timeout(proxy):
    """A client that never stops sending after the close is cut off (reset)
    after server.lingering-timeout, not before and not much later."""
    p = proxy(env={"WSPROXY_LINGERING_TIMEOUT": "1500ms"})
    with connect(p) as c:
        c.send_close(1000)
        code, _ = c.expect_close(5)
        assert code == 1000
        t0 = time.monotonic()
        chunk = build_frame(OP_TEXT, b"x" * 2000)
        err = None
        while time.monotonic() - t0 < 8:
            try:
                c.sock.sendall(chunk)
            except OSError as e:
                err = e
                break
            time.sleep(0.01)
        took = time.monotonic() - t0
        assert err is not None, "still accepted after %.1f s" % took
        assert 1.2 <= took <= 3.0, \
            "cut off after %.2f s (lingering-timeout 1.5 s)" % took


def test_linger_ends_at_the_clients_eof(lp):
    """A client that closes its side after the close handshake frees the
    socket at once: the proxy does not wait out the lingering timeout (its
    file descriptors come back)."""
    import os
    base = len(os.listdir("/proc/%d/fd" % lp.proc.pid))
    socks = []
    for _ in range(20):
        c = connect(lp)
        c.send_close(1000)
        socks.append(c)
    for c in socks:
        assert c.expect_close(5)[0] == 1000
        assert c.wait_tcp_close(5)
        c.close()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if len(os.listdir("/proc/%d/fd" % lp.proc.pid)) <= base:
            break
        time.sleep(0.05)
    assert len(os.listdir("/proc/%d/fd" % lp.proc.pid)) <= base
