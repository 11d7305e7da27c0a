"""HTTP before the upgrade: docs/api.md "Listener", "Endpoints" and the
"HTTP errors" table. Every error is JSON {"message": ...} with
Content-Type application/json."""

import base64
import socket
import time

import pytest

from conftest import assert_json_error, wait_until
from wsraw import Closed, WsRaw, http_request_bytes, new_key

MAX_BODY = 1024
MAX_HEADER_SIZE = 8192
MAX_HEADER_COUNT = 50

NOT_FOUND = "This is not the resource you are looking for."
BAD_KEY = "Invalid WebSocket upgrade: missing or malformed Sec-WebSocket-Key"
BAD_VERSION = "Unsupported WebSocket version, only 13 is supported"
BAD_UPGRADE = ("Invalid WebSocket upgrade: expected 'Upgrade: websocket' and "
               "'Connection: Upgrade'")
NOT_ALLOWED = "HTTP method not allowed, supported methods: GET, HEAD"
TIMED_OUT = "Request timed out"
BODY_TOO_LARGE = "Request body too large"
EXPECTED_UPGRADE = "Expected WebSocket Upgrade request"
HEADERS_TOO_LARGE = "Request header fields too large"
TOO_MANY_CONNS = "Too many connections"


@pytest.fixture(scope="module")
def srv(proxy_mod):
    return proxy_mod(env={
        "WSPROXY_REQUEST_TIMEOUT": "1s",
        "WSPROXY_MAX_REQUEST_BODY_SIZE": str(MAX_BODY),
        "WSPROXY_MAX_HEADER_SIZE": str(MAX_HEADER_SIZE),
        "WSPROXY_MAX_HEADER_COUNT": str(MAX_HEADER_COUNT),
    })


@pytest.fixture(autouse=True)
def _alive(request):
    yield
    if "srv" in request.fixturenames:
        request.getfixturevalue("srv").assert_alive()


def request(port, data, **kw):
    c = WsRaw(port, timeout=kw.pop("timeout", 5.0))
    c.send_raw(data)
    return c.read_response(**kw), c


def check_error(r, status, message=None, prefix=None):
    return assert_json_error(r.status, r.headers, r.body, status, message,
                             prefix)


def upgrade_bytes(path="/echo", key="auto", version="13", upgrade="websocket",
                  connection="Upgrade", extra=()):
    h = []
    if upgrade is not None:
        h.append(("Upgrade", upgrade))
    if connection is not None:
        h.append(("Connection", connection))
    if key is not None:
        h.append(("Sec-WebSocket-Key", new_key() if key == "auto" else key))
    if version is not None:
        h.append(("Sec-WebSocket-Version", version))
    h += list(extra)
    return http_request_bytes("GET", path, h)


# -- 400 malformed ------------------------------------------------------------

MALFORMED = {
    "control-char-method": b"\x01\x02\x03 / HTTP/1.1\r\n\r\n",
    "bad-method": b"G@T /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-without-colon": b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n",
    "bad-content-length": b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "cl-and-te": (b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad-chunk-size": (b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "bad-version": b"GET /healthcheck HTTP/x.y\r\nHost: x\r\n\r\n",
    "space-in-header-name": b"GET /healthcheck HTTP/1.1\r\nHo st: x\r\n\r\n",
}


@pytest.mark.parametrize("data", list(MALFORMED.values()),
                         ids=list(MALFORMED.keys()))
def test_malformed_request_400(srv, data):
    r, c = request(srv.port, data)
    with c:
        check_error(r, 400, prefix="Malformed HTTP request: ")
        assert len(r.json()["message"]) > len("Malformed HTTP request: ")
        assert c.wait_tcp_close(3), "connection not closed after a 400"


def test_malformed_after_valid_request_on_same_connection(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200
        c.send_raw(b"\x00garbage\r\n\r\n")
        check_error(c.read_response(), 400, prefix="Malformed HTTP request: ")
        assert c.wait_tcp_close(3)


# -- 400 WebSocket upgrade ---------------------------------------------------

BAD_KEYS = {
    "missing": None,
    "empty": "",
    "short": "abc",
    "15-bytes": base64.b64encode(b"x" * 15).decode(),
    "17-bytes": base64.b64encode(b"x" * 17).decode(),
    "not-base64": "!!!!!!!!!!!!!!!!!!!!!!==",
}


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS.keys()))
@pytest.mark.parametrize("path", ["/echo", "/socket/out"])
def test_bad_websocket_key_400(srv, key, path):
    r, c = request(srv.port, upgrade_bytes(path, key=key))
    with c:
        check_error(r, 400, BAD_KEY)


@pytest.mark.parametrize("version", ["8", "12", "14", "abc"])
def test_bad_websocket_version_400(srv, version):
    r, c = request(srv.port, upgrade_bytes(version=version))
    with c:
        check_error(r, 400, BAD_VERSION)
        assert r.headers.get("sec-websocket-version") == "13", r.headers


def test_missing_websocket_version_400(srv):
    r, c = request(srv.port, upgrade_bytes(version=None))
    with c:
        check_error(r, 400, BAD_VERSION)
        assert r.headers.get("sec-websocket-version") == "13", r.headers


@pytest.mark.parametrize("upgrade,connection", [
    ("h2c", "Upgrade"),
    ("websocket", "keep-alive"),
    ("websocket", None),
], ids=["upgrade-h2c", "connection-keep-alive", "connection-missing"])
def test_bad_upgrade_headers_400(srv, upgrade, connection):
    r, c = request(srv.port, upgrade_bytes(upgrade=upgrade, connection=connection))
    with c:
        check_error(r, 400, BAD_UPGRADE)


NOT_GET_11 = "Invalid WebSocket upgrade: the handshake must be an HTTP/1.1 GET"


def _ws_headers(extra=()):
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", new_key()),
            ("Sec-WebSocket-Version", "13")] + list(extra)


def test_upgrade_needs_get(srv):
    """A HEAD with upgrade headers got 101 and a working WebSocket."""
    r, c = request(srv.port, http_request_bytes("HEAD", "/echo", _ws_headers()),
                   head_request=True)
    with c:
        assert r.status == 400, r
        assert r.body == b"", r.body


def test_upgrade_needs_http11(srv):
    """An HTTP/1.0 upgrade got 101 (RFC 6455 4.1 needs 1.1 or later)."""
    r, c = request(srv.port, http_request_bytes("GET", "/echo", _ws_headers(),
                                                version="HTTP/1.0"))
    with c:
        check_error(r, 400, NOT_GET_11)


@pytest.mark.parametrize("first", ["valid", "empty"])
def test_repeated_websocket_key_400(srv, first):
    """RFC 6455 11.3.1: Sec-WebSocket-Key must not appear more than once;
    two got 101."""
    h = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
         ("Sec-WebSocket-Key", new_key() if first == "valid" else ""),
         ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]
    r, c = request(srv.port, http_request_bytes("GET", "/echo", h))
    with c:
        check_error(r, 400, BAD_KEY)


def test_upgrade_header_tokens_case_insensitive(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(upgrade_bytes(upgrade="WebSocket",
                                 connection="keep-alive, UPGRADE"))
        r = c.read_response()
        assert r.status == 101, r


def test_lowercase_header_names_and_tokens(srv):
    c = WsRaw(srv.port)
    with c:
        key = new_key()
        c.send_raw(("GET /echo HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n"
                    "connection: upgrade\r\nsec-websocket-key: %s\r\n"
                    "sec-websocket-version: 13\r\n\r\n" % key).encode())
        r = c.read_response()
        assert r.status == 101, r


# -- 404 / 405 -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/nope", "/healthcheck/extra",
                                  "/echo2", "/socket", "/kafka/cluster",
                                  "/HEALTHCHECK"])
def test_unknown_path_404(srv, path):
    r, c = request(srv.port, http_request_bytes("GET", path))
    with c:
        check_error(r, 404, NOT_FOUND)


def test_unknown_path_upgrade_404(srv):
    r, c = request(srv.port, upgrade_bytes("/not-here"))
    with c:
        check_error(r, 404, NOT_FOUND)


def test_query_string_ignored_for_routing(srv):
    r, c = request(srv.port, http_request_bytes("GET", "/healthcheck?x=1&y"))
    with c:
        assert r.status == 200


@pytest.mark.parametrize("method,path", [
    ("POST", "/healthcheck"), ("PUT", "/healthcheck"),
    ("DELETE", "/kafka/cluster/info"), ("PATCH", "/admin/kafka/info"),
    ("POST", "/echo"), ("POST", "/socket/in"), ("OPTIONS", "/socket/out"),
])
def test_method_not_allowed_405(srv, method, path):
    r, c = request(srv.port, http_request_bytes(
        method, path, {"Content-Length": "0"}))
    with c:
        check_error(r, 405, NOT_ALLOWED)
        assert r.headers.get("allow") == "GET, HEAD", r.headers


def test_405_keeps_connection_usable(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("POST", "/healthcheck", body=b"12345"))
        check_error(c.read_response(), 405, NOT_ALLOWED)
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200


# -- 408 ---------------------------------------------------------------------

def test_slow_headers_408(srv):
    c = WsRaw(srv.port, timeout=6)
    with c:
        t0 = time.monotonic()
        c.send_raw(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        r = c.read_response(timeout=6)
        took = time.monotonic() - t0
        check_error(r, 408, TIMED_OUT)
        assert 0.8 <= took <= 4.0, "408 after %.2f s (timeout 1 s)" % took
        assert c.wait_tcp_close(3), "connection not closed after 408"


def test_slow_body_408(srv):
    c = WsRaw(srv.port, timeout=6)
    with c:
        c.send_raw(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
        r = c.read_response(timeout=6)
        check_error(r, 408, TIMED_OUT)
        assert c.wait_tcp_close(3)


def test_trickled_request_still_times_out(srv):
    """Bytes that keep coming do not extend the deadline of the request."""
    c = WsRaw(srv.port, timeout=6)
    with c:
        t0 = time.monotonic()
        c.send_raw(b"GET /healthcheck HTTP/1.1\r\n")
        r = None
        for i in range(40):
            if not c.send_raw(b"X-H%d: v\r\n" % i):
                break
            try:
                r = c.read_response(timeout=0.1)
                break
            except (socket.timeout, Closed):
                pass
        if r is None:
            r = c.read_response(timeout=3)
        check_error(r, 408, TIMED_OUT)
        assert time.monotonic() - t0 < 3.5


def test_request_within_timeout_ok(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(b"GET /healthcheck HTTP/1.1\r\n", chunk=4, delay=0.02)
        time.sleep(0.3)
        c.send_raw(b"Host: x\r\n\r\n")
        assert c.read_response().status == 200


# -- 413 ---------------------------------------------------------------------

def test_body_over_limit_413(srv):
    body = b"b" * (MAX_BODY + 1)
    r, c = request(srv.port, http_request_bytes("GET", "/healthcheck", body=body))
    with c:
        check_error(r, 413, BODY_TOO_LARGE)
        assert c.wait_tcp_close(3), "connection not closed after 413"


def test_declared_body_over_limit_413_without_body(srv):
    r, c = request(srv.port, b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 100000000\r\n\r\n")
    with c:
        check_error(r, 413, BODY_TOO_LARGE)
        assert c.wait_tcp_close(3)


def test_chunked_body_over_limit_413(srv):
    chunks = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(5))  # 1280
    r, c = request(srv.port, b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    with c:
        check_error(r, 413, BODY_TOO_LARGE)


def test_body_within_limit_discarded(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck", body=b"x" * MAX_BODY))
        r = c.read_response()
        assert r.status == 200 and r.body == b'{ "response": "I\'m healthy" }'
        # the body did not leak into the next request
        c.send_raw(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n")
        assert c.read_response().status == 200
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200


# -- 426 ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/echo", "/socket/in", "/socket/out"])
def test_plain_get_on_websocket_endpoint_426(srv, path):
    r, c = request(srv.port, http_request_bytes("GET", path))
    with c:
        check_error(r, 426, EXPECTED_UPGRADE)
        assert r.headers.get("upgrade", "").lower() == "websocket", r.headers


# -- 431 ---------------------------------------------------------------------

def test_huge_header_431(srv):
    data = http_request_bytes("GET", "/healthcheck",
                              {"X-Huge": "h" * (MAX_HEADER_SIZE + 100)})
    r, c = request(srv.port, data)
    with c:
        check_error(r, 431, HEADERS_TOO_LARGE)
        assert c.wait_tcp_close(3), "connection not closed after 431"


def test_huge_url_431(srv):
    r, c = request(srv.port, http_request_bytes(
        "GET", "/healthcheck?" + "q" * (MAX_HEADER_SIZE + 10)))
    with c:
        check_error(r, 431, HEADERS_TOO_LARGE)


def test_very_huge_header_431(srv):
    """Far beyond the limit (256 KiB of one header): the server must not
    buffer it all, and answers 431."""
    c = WsRaw(srv.port)
    with c:
        c.send_raw(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(16):
            if not c.send_raw(b"a" * 16384):
                break
        r = c.read_response()
        check_error(r, 431, HEADERS_TOO_LARGE)


def test_too_many_headers_431(srv):
    hdrs = [("X-H%d" % i, "v") for i in range(MAX_HEADER_COUNT + 5)]
    r, c = request(srv.port, http_request_bytes("GET", "/healthcheck", hdrs))
    with c:
        check_error(r, 431, HEADERS_TOO_LARGE)
        assert c.wait_tcp_close(3)


def test_headers_at_limits_ok(srv):
    hdrs = [("X-H%d" % i, "v") for i in range(MAX_HEADER_COUNT - 1)]  # + Host
    r, c = request(srv.port, http_request_bytes("GET", "/healthcheck", hdrs))
    with c:
        assert r.status == 200, r
    r, c = request(srv.port, http_request_bytes(
        "GET", "/healthcheck", {"X-Big": "b" * (MAX_HEADER_SIZE - 200)}))
    with c:
        assert r.status == 200, r


# -- /socket/out validation ---------------------------------------------------

def test_socket_out_upgrade_without_topic_400(srv):
    """/socket/out is the consumer (docs/api.md "Consume"): a valid upgrade
    without topic is a 400 naming the parameter."""
    r, c = request(srv.port, upgrade_bytes("/socket/out?clientId=abc"))
    with c:
        check_error(r, 400, "Request param 'topic' is missing.")


def test_socket_in_upgrade_without_params_400(srv):
    """/socket/in is the producer now (docs/api.md "Produce"): a valid
    upgrade without clientId is a 400 naming the parameter."""
    r, c = request(srv.port, upgrade_bytes("/socket/in"))
    with c:
        check_error(r, 400, "Request param 'clientId' is missing.")


# -- 503 max connections -----------------------------------------------------

def test_max_connections_burst_refuses_only_the_excess(proxy):
    """60 connections at once against a limit of 50: the 10 accepted last
    get the 503. The workers compared a shared count that also held sockets
    accepted after their own, and refused 10 to 54 of them; refused sockets
    also kept counting until the client closed."""
    import select
    p = proxy(env={"WSPROXY_MAX_CONNECTIONS": "50"})
    time.sleep(0.5)  # the start-up health checks are gone
    for _ in range(3):
        socks = [socket.create_connection(("127.0.0.1", p.port))
                 for _ in range(60)]
        time.sleep(1.0)
        refused = 0
        for s in socks:
            r, _, _ = select.select([s], [], [], 0)
            if r and s.recv(4096).startswith(b"HTTP/1.1 503"):
                refused += 1
        for s in socks:
            s.close()
        assert refused == 10, refused
        time.sleep(0.5)


def test_max_connections_503(proxy):
    p = proxy(env={"WSPROXY_MAX_CONNECTIONS": "5"})
    held = []
    try:
        # (retrying while the startup health-check connection may still be
        # counted)
        for _ in range(5):
            deadline = time.monotonic() + 3
            while True:
                c = WsRaw(p.port)
                c.send_raw(http_request_bytes("GET", "/healthcheck"))
                try:
                    st = c.read_response().status
                except Closed:
                    st = None
                if st == 200:
                    held.append(c)
                    break
                c.close()
                assert time.monotonic() < deadline, \
                    "could not open 5 connections with max-connections 5"
                time.sleep(0.1)
        extra = WsRaw(p.port)
        extra.send_raw(http_request_bytes("GET", "/healthcheck"))
        try:
            r = extra.read_response()
        except Closed:
            pytest.fail("6th connection closed without a 503 response")
        check_error(r, 503, TOO_MANY_CONNS)
        assert extra.wait_tcp_close(3), "connection not closed after 503"
        extra.close()
        # a WebSocket upgrade over the limit gets the same
        ws = WsRaw(p.port)
        ws.send_raw(upgrade_bytes("/echo"))
        check_error(ws.read_response(), 503, TOO_MANY_CONNS)
        ws.close()
        # the held connections still work
        for c in held:
            c.send_raw(http_request_bytes("GET", "/healthcheck"))
            assert c.read_response().status == 200
        # freeing one makes room again
        held.pop().close()

        def one_more():
            c = WsRaw(p.port)
            c.send_raw(http_request_bytes("GET", "/healthcheck"))
            try:
                st = c.read_response().status
            except Closed:
                st = None
            c.close()
            return st == 200
        assert wait_until(one_more, 5, 0.1), "no room after closing one"
    finally:
        for c in held:
            c.close()


# -- keep-alive, HTTP/1.0, HEAD -------------------------------------------------

def test_keep_alive_two_requests(srv):
    c = WsRaw(srv.port)
    with c:
        for _ in range(2):
            c.send_raw(http_request_bytes("GET", "/healthcheck"))
            r = c.read_response()
            assert r.status == 200
            assert r.headers.get("connection", "").lower() != "close"
        assert c.is_open_after(0.3)


def test_pipelined_requests_answered_in_order(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck") +
                   http_request_bytes("GET", "/nope") +
                   http_request_bytes("HEAD", "/healthcheck") +
                   http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200
        check_error(c.read_response(), 404, NOT_FOUND)
        r = c.read_response(head_request=True)
        assert r.status == 200
        r = c.read_response()
        assert r.status == 200 and b"healthy" in r.body


def test_connection_close_header(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck", {"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200
        assert c.wait_tcp_close(3), "Connection: close not honoured"


@pytest.mark.parametrize("extra", ["", "Connection: keep-alive\r\n"],
                         ids=["plain", "asks-keep-alive"])
def test_http10_closes(srv, extra):
    """Also when it asks for keep-alive (that one stayed open, without the
    Connection: keep-alive answer a 1.0 client needs)."""
    c = WsRaw(srv.port)
    with c:
        c.send_raw(b"GET /healthcheck HTTP/1.0\r\n" + extra.encode() + b"\r\n")
        r = c.read_response()
        assert r.status == 200 and b"healthy" in r.body
        assert c.wait_tcp_close(3), "HTTP/1.0 connection not closed"


def test_head_healthcheck_no_body(srv):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        g = c.read_response()
        c.send_raw(http_request_bytes("HEAD", "/healthcheck"))
        h = c.read_response(head_request=True)
        assert h.status == 200
        assert h.headers.get("content-type") == g.headers.get("content-type")
        assert h.headers.get("content-length") == g.headers.get("content-length")
        # no body bytes: the next response starts right away
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.buf == b"" or c.buf.startswith(b"HTTP/1.1 200"), c.buf
        r = c.read_response()
        assert r.status == 200 and r.body == g.body


@pytest.mark.parametrize("path,status", [("/nope", 404), ("/echo", 426)])
def test_head_error_no_body(srv, path, status):
    c = WsRaw(srv.port)
    with c:
        c.send_raw(http_request_bytes("HEAD", path))
        r = c.read_response(head_request=True)
        assert r.status == status
        assert r.headers.get("content-type", "").startswith("application/json")
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        r2 = c.read_response()
        assert r2.status == 200, "HEAD response carried a body: %r" % r2


# -- /echo disabled ------------------------------------------------------------

def test_echo_disabled_404(proxy):
    p = proxy(echo=False)
    r, c = request(p.port, upgrade_bytes("/echo"))
    with c:
        check_error(r, 404, NOT_FOUND)
    r, c = request(p.port, http_request_bytes("GET", "/echo"))
    with c:
        check_error(r, 404, NOT_FOUND)


def test_echo_disabled_by_default(proxy):
    p = proxy(echo=None)
    r, c = request(p.port, upgrade_bytes("/echo"))
    with c:
        check_error(r, 404, NOT_FOUND)


def test_idle_keepalive_connection_closed(proxy):
    p = proxy(env={"WSPROXY_IDLE_TIMEOUT": "1s"})
    c = WsRaw(p.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_tcp_close(5), "idle keep-alive connection not closed"
        took = time.monotonic() - t0
        assert c.buf == b"", "unsolicited bytes on an idle connection: %r" % c.buf
        assert 0.7 <= took <= 3.5, "closed after %.2f s (idle-timeout 1 s)" % took


def test_idle_keepalive_after_request_not_answered_408(proxy):
    """An idle keep-alive connection (its request answered) is closed after
    idle-timeout without any unsolicited response; request-timeout is for
    requests in progress."""
    p = proxy(env={"WSPROXY_IDLE_TIMEOUT": "4s", "WSPROXY_REQUEST_TIMEOUT": "1s"})
    c = WsRaw(p.port)
    with c:
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200
        closed = c.wait_tcp_close(2.5)
        assert c.buf == b"", "unsolicited response on an idle keep-alive " \
            "connection: %r" % c.buf[:120]
        assert not closed, "idle connection closed before idle-timeout"
        c.send_raw(http_request_bytes("GET", "/healthcheck"))
        assert c.read_response().status == 200
