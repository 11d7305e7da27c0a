"""RFC 6455 conformance on the diagnostic /echo endpoint
(shared/reference/websocket-conformance.md, docs/api.md "WebSocket")."""

import asyncio
import os
import random
import socket
import struct
import threading
import time

import pytest
import websocket  # websocket-client
import websockets

from conftest import http_get
from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                   Closed, WsRaw, build_frame, close_payload)


@pytest.fixture(scope="module")
def echo(proxy_mod):
    """One proxy (default limits) shared by the module's tests."""
    return proxy_mod()


@pytest.fixture(autouse=True)
def _proxy_still_alive(request):
    """After each test using the shared proxy: it is still alive and has
    logged no sanitizer report (so a crash is blamed on the right test)."""
    yield
    for name in ("echo", "small"):
        if name in request.fixturenames:
            request.getfixturevalue(name).assert_alive()


def connect(p, path="/echo", timeout=5.0):
    c = WsRaw(p.port, timeout=timeout)
    c.handshake(path)
    return c


def assert_echo(c, opcode, payload, timeout=10.0):
    f = c.recv_frame(timeout)
    assert f.opcode == opcode, f
    assert f.fin, f
    assert f.rsv == 0, f
    assert not f.masked, "server frames must not be masked: %r" % f
    assert f.minimal, "server frame length not minimally encoded: %r" % f
    assert len(f.payload) == len(payload)
    assert f.payload == payload, "echo differs"


def assert_clean_close(c, code=1000):
    c.send_close(code)
    got, _ = c.expect_close(5, allow_data=False)
    assert got == code
    assert c.wait_tcp_close(5), "server did not close TCP after the close"


def assert_fails(c, want_code, timeout=5.0):
    """The server closes with @want_code and then closes TCP."""
    code, _ = c.expect_close(timeout)
    assert code == want_code, "close code %s, expected %s" % (code, want_code)
    assert c.wait_tcp_close(5), "server did not close TCP after failing"


# -- 1 Framing ---------------------------------------------------------------

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1000000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_echo_sizes(echo, opcode, size):
    if opcode == OP_TEXT:
        payload = (b"abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[:size]
    else:
        payload = os.urandom(size)
    with connect(echo) as c:
        c.send_frame(opcode, payload)
        assert_echo(c, opcode, payload)
        assert_clean_close(c)


def test_frame_written_one_byte_at_a_time(echo):
    with connect(echo) as c:
        for opcode, payload in ((OP_TEXT, b"x" * 300), (OP_BINARY, b"\x00\xff" * 70),
                                (OP_TEXT, "héllo wörld €".encode())):
            c.send_frame(opcode, payload, chunk=1, delay=0.0005)
            assert_echo(c, opcode, payload)
        # a ping too
        c.send_frame(OP_PING, b"tiny", chunk=1, delay=0.0005)
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"tiny")
        assert_clean_close(c)


def test_handshake_written_in_small_chunks(echo):
    c = WsRaw(echo.port)
    with c:
        c.handshake("/echo", chunk=3, delay=0.001)
        c.send_text("after a slow handshake")
        assert_echo(c, OP_TEXT, b"after a slow handshake")


def test_many_frames_in_one_write(echo):
    msgs = [("m%d" % i).encode() * (i + 1) for i in range(50)]
    with connect(echo) as c:
        c.send_raw(b"".join(build_frame(OP_TEXT, m) for m in msgs))
        for m in msgs:
            assert_echo(c, OP_TEXT, m)
        assert_clean_close(c)


def test_frame_following_handshake_in_same_write(echo):
    """Bytes after the upgrade request in the same TCP segment are frames."""
    c = WsRaw(echo.port)
    with c:
        req = c.handshake_request("/echo")
        c.send_raw(req + build_frame(OP_TEXT, b"early bird"))
        r = c.read_response()
        assert r.status == 101
        assert_echo(c, OP_TEXT, b"early bird")


def test_websocket_client_library(echo):
    ws = websocket.create_connection(echo.ws_url("/echo"), timeout=5)
    try:
        ws.send("hello from websocket-client")
        assert ws.recv() == "hello from websocket-client"
        ws.send_binary(b"\x00\x01\x02")
        assert ws.recv() == b"\x00\x01\x02"
        ws.ping(b"p")
        op, frame = ws.recv_data_frame(True)
        assert op == websocket.ABNF.OPCODE_PONG and frame.data == b"p"
        ws.close(status=websocket.STATUS_NORMAL)
        # the library reads the server's close: echoed 1000
        assert ws.connected is False
    finally:
        ws.shutdown()


def test_permessage_deflate_offer_ignored(echo):
    c = WsRaw(echo.port)
    with c:
        r = c.handshake("/echo", headers={
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Protocol": "chat"})
        assert "sec-websocket-extensions" not in r.headers, r.headers
        assert "sec-websocket-protocol" not in r.headers, r.headers
        # RSV1 stays reserved even though the client offered deflate
        c.send_frame(OP_TEXT, b"x", rsv=4)
        assert_fails(c, 1002)


# -- 2 Ping / pong -----------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 10, 125])
def test_ping_answered_with_same_payload(echo, size):
    payload = os.urandom(size)
    with connect(echo) as c:
        c.send_frame(OP_PING, payload)
        f = c.recv_frame()
        assert f.opcode == OP_PONG and f.fin and not f.masked, f
        assert f.payload == payload
        assert_clean_close(c)


def test_ping_126_bytes_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_PING, b"p" * 126)
        assert_fails(c, 1002)


def test_unsolicited_pong_ignored(echo):
    with connect(echo) as c:
        c.send_frame(OP_PONG, b"unsolicited")
        c.send_frame(OP_PONG, b"")
        c.send_text("after pongs")
        # the very next frame is the echo: nothing answered the pongs
        assert_echo(c, OP_TEXT, b"after pongs")
        assert_clean_close(c)


def test_ping_after_close_ignored(echo):
    with connect(echo) as c:
        c.send_raw(build_frame(OP_CLOSE, close_payload(1000)) +
                   build_frame(OP_PING, b"too late") +
                   build_frame(OP_TEXT, b"too late"))
        f = c.recv_frame()
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f
        try:
            extra = c.recv_frame(1.0)
            pytest.fail("frame after the close: %r" % extra)
        except (Closed, socket.timeout):
            pass
        assert c.wait_tcp_close(5)


def test_many_pings(echo):
    with connect(echo) as c:
        c.send_raw(b"".join(build_frame(OP_PING, b"%d" % i) for i in range(100)))
        for i in range(100):
            f = c.recv_frame()
            assert (f.opcode, f.payload) == (OP_PONG, b"%d" % i)
        assert_clean_close(c)


# -- 3 Reserved bits ---------------------------------------------------------

@pytest.mark.parametrize("rsv", [4, 2, 1, 7], ids=["rsv1", "rsv2", "rsv3", "all"])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING],
                         ids=["text", "binary", "ping"])
def test_rsv_bits_fail(echo, rsv, opcode):
    with connect(echo) as c:
        c.send_frame(opcode, b"hello", rsv=rsv)
        assert_fails(c, 1002)


def test_rsv_after_valid_traffic(echo):
    with connect(echo) as c:
        c.send_text("ok")
        assert_echo(c, OP_TEXT, b"ok")
        c.send_frame(OP_TEXT, b"bad", rsv=2)
        assert_fails(c, 1002)


# -- 4 Opcodes ---------------------------------------------------------------

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF],
                         ids=lambda o: "op%X" % o)
def test_reserved_opcodes_fail(echo, opcode):
    with connect(echo) as c:
        c.send_frame(opcode, b"payload")
        assert_fails(c, 1002)


def test_reserved_opcode_empty_payload_fails(echo):
    with connect(echo) as c:
        c.send_frame(5, b"")
        assert_fails(c, 1002)


# -- 5 Fragmentation ---------------------------------------------------------

def test_fragmented_text_reassembled(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"Hello, ", fin=False)
        c.send_frame(OP_CONT, b"fragmented ", fin=False)
        c.send_frame(OP_CONT, b"", fin=False)
        c.send_frame(OP_CONT, b"world")
        assert_echo(c, OP_TEXT, b"Hello, fragmented world")
        assert_clean_close(c)


def test_fragmented_binary_many_fragments(echo):
    data = os.urandom(3000)
    with connect(echo) as c:
        frames = [build_frame(OP_BINARY if i == 0 else OP_CONT, data[i:i + 10],
                              fin=(i + 10 >= len(data)))
                  for i in range(0, len(data), 10)]
        c.send_raw(b"".join(frames))
        assert_echo(c, OP_BINARY, data)
        assert_clean_close(c)


def test_fragments_with_empty_payloads(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"", fin=False)
        c.send_frame(OP_CONT, b"", fin=False)
        c.send_frame(OP_CONT, b"")
        assert_echo(c, OP_TEXT, b"")
        assert_clean_close(c)


def test_continuation_without_start_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_CONT, b"orphan")
        assert_fails(c, 1002)


def test_continuation_without_start_nonfinal_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_CONT, b"orphan", fin=False)
        assert_fails(c, 1002)


def test_continuation_after_complete_message_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"complete")
        assert_echo(c, OP_TEXT, b"complete")
        c.send_frame(OP_CONT, b"orphan")
        assert_fails(c, 1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_new_message_during_fragmented_one_fails(echo, second):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"first ", fin=False)
        c.send_frame(second, b"second")
        assert_fails(c, 1002)


def test_ping_between_fragments(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"frag1 ", fin=False)
        c.send_frame(OP_PING, b"interleaved")
        c.send_frame(OP_PONG, b"unsolicited interleaved")
        c.send_frame(OP_CONT, b"frag2 ", fin=False)
        c.send_frame(OP_PING, b"again")
        c.send_frame(OP_CONT, b"frag3")
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"interleaved"), f
        f = c.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"again"), f
        assert_echo(c, OP_TEXT, b"frag1 frag2 frag3")
        assert_clean_close(c)


def test_close_between_fragments(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"frag1 ", fin=False)
        c.send_close(1000)
        code, _ = c.expect_close(5, allow_data=False)
        assert code == 1000
        assert c.wait_tcp_close(5)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE],
                         ids=["ping", "pong", "close"])
def test_fragmented_control_frame_fails(echo, opcode):
    with connect(echo) as c:
        payload = close_payload(1000) if opcode == OP_CLOSE else b"frag"
        c.send_frame(opcode, payload, fin=False)
        c.send_frame(OP_CONT, b"ment")
        assert_fails(c, 1002)


def test_pong_126_bytes_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_PONG, b"p" * 126)
        assert_fails(c, 1002)


# -- 6 UTF-8 -----------------------------------------------------------------

VALID_UTF8 = [
    "κόσμε",
    "Hello-µ@ßöäüàá-UTF-8!!",
    "日本語のテキスト",
    "\U0001F600 emoji \U0001F680",
    "\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
    "\ufeffBOM is valid",
    "nul\x00inside",
]


@pytest.mark.parametrize("text", VALID_UTF8, ids=range(len(VALID_UTF8)))
def test_valid_utf8_echoed(echo, text):
    with connect(echo) as c:
        c.send_text(text.encode("utf-8"))
        assert_echo(c, OP_TEXT, text.encode("utf-8"))
        assert_clean_close(c)


INVALID_UTF8 = {
    "ff": b"\xff",
    "fe": b"abc\xfe",
    "lone-continuation": b"a\x80b",
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-max-2": b"\xc1\xbf",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "5-byte": b"\xf8\x88\x80\x80\x80",
    "6-byte": b"\xfc\x84\x80\x80\x80\x80",
    "truncated-at-end": b"\xe2\x82",
    "truncated-then-ascii": b"\xe2\x82a",
    "autobahn-6.3.1": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
}


@pytest.mark.parametrize("data", list(INVALID_UTF8.values()),
                         ids=list(INVALID_UTF8.keys()))
def test_invalid_utf8_fails_1007(echo, data):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, data)
        assert_fails(c, 1007)


def test_valid_binary_with_invalid_utf8_is_fine(echo):
    with connect(echo) as c:
        c.send_binary(b"\xff\xfe\xed\xa0\x80")
        assert_echo(c, OP_BINARY, b"\xff\xfe\xed\xa0\x80")
        assert_clean_close(c)


@pytest.mark.parametrize("text", ["€", "\U0001F600", "κ"])
def test_code_point_split_across_fragments(echo, text):
    data = ("ab" + text + "cd").encode("utf-8")
    with connect(echo) as c:
        # split inside every possible position of the multi-byte sequence
        for cut in range(3, 2 + len(text.encode("utf-8"))):
            c.send_frame(OP_TEXT, data[:cut], fin=False)
            c.send_frame(OP_CONT, data[cut:])
            assert_echo(c, OP_TEXT, data)
        # and byte by byte, one fragment per byte
        frames = [build_frame(OP_TEXT if i == 0 else OP_CONT, data[i:i + 1],
                              fin=(i == len(data) - 1)) for i in range(len(data))]
        c.send_raw(b"".join(frames))
        assert_echo(c, OP_TEXT, data)
        assert_clean_close(c)


def test_invalid_sequence_across_fragments_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"ok \xe2\x82", fin=False)
        c.send_frame(OP_CONT, b"a")  # 'a' cannot continue a 3-byte sequence
        assert_fails(c, 1007)


def test_truncated_sequence_at_end_of_fragmented_message_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"ok ", fin=False)
        c.send_frame(OP_CONT, b"\xf0\x9f\x98")  # FIN with 3 of 4 bytes
        assert_fails(c, 1007)


def test_utf8_fail_fast_mid_frame(echo):
    """Half of a text frame with an invalid byte, the rest never sent:
    the server must close 1007 without waiting for the rest."""
    with connect(echo) as c:
        full = build_frame(OP_TEXT, b"valid start \xff" + b"x" * 1000)
        t0 = time.monotonic()
        c.send_raw(full[:len(full) // 2])
        assert_fails(c, 1007, timeout=3)
        assert time.monotonic() - t0 < 3


def test_utf8_fail_fast_in_first_fragment(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"abc\xc0\xaf", fin=False)  # never completed
        assert_fails(c, 1007, timeout=3)


def test_utf8_fail_fast_byte_by_byte(echo):
    with connect(echo) as c:
        full = build_frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80" + b"z" * 100)
        # header (2) + mask (4) + payload up to and including the bad 0xa0
        c.send_raw(full[:2 + 4 + 7], chunk=1, delay=0.002)
        assert_fails(c, 1007, timeout=3)


# -- 7 Close -----------------------------------------------------------------

def test_close_empty_payload(echo):
    with connect(echo) as c:
        c.send_close()  # no code
        code, reason = c.expect_close(5, allow_data=False)
        # docs/api.md: "echoing its code (1000 when the client sent none)"
        assert code == 1000, code
        assert c.wait_tcp_close(5)


def test_close_one_byte_payload_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_CLOSE, b"\x03")
        assert_fails(c, 1002)


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
               1012, 1013, 1014, 3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes_echoed(echo, code):
    with connect(echo) as c:
        c.send_close(code, b"reason")
        got, _ = c.expect_close(5, allow_data=False)
        assert got == code
        assert c.wait_tcp_close(5)


def test_close_with_max_length_reason(echo):
    with connect(echo) as c:
        c.send_close(1000, "é" * 61 + "x")  # 2 + 123 = 125 bytes
        got, _ = c.expect_close(5)
        assert got == 1000
        assert c.wait_tcp_close(5)


def test_close_payload_over_125_fails(echo):
    with connect(echo) as c:
        c.send_close(1000, b"r" * 124)  # 126 bytes
        assert_fails(c, 1002)


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999,
                 5000, 65535]


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes_fail(echo, code):
    with connect(echo) as c:
        c.send_close(code)
        assert_fails(c, 1002)


def test_close_invalid_utf8_reason_fails(echo):
    with connect(echo) as c:
        c.send_close(1000, b"bad \xff reason")
        assert_fails(c, 1002)


def test_no_data_after_close(echo):
    """After its close frame the server sends no more data frames."""
    with connect(echo) as c:
        c.send_raw(build_frame(OP_CLOSE, close_payload(1000)) +
                   build_frame(OP_TEXT, b"must not be echoed"))
        code, _ = c.expect_close(5, allow_data=False)
        assert code == 1000
        assert c.wait_tcp_close(5)
        assert c.buf == b"", "bytes after the close frame: %r" % c.buf


def test_client_tcp_close_without_close_frame(echo):
    for _ in range(20):
        c = connect(echo)
        c.send_frame(OP_TEXT, b"x" * 50000)
        c.close()
    # and mid-frame
    for _ in range(20):
        c = connect(echo)
        c.send_raw(build_frame(OP_BINARY, b"y" * 1000)[:500])
        c.close()
    assert echo.get("/healthcheck")[0] == 200


# -- Masking -----------------------------------------------------------------

@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE],
                         ids=["text", "binary", "ping", "close"])
def test_unmasked_client_frame_fails(echo, opcode):
    with connect(echo) as c:
        payload = close_payload(1000) if opcode == OP_CLOSE else b"unmasked"
        c.send_frame(opcode, payload, mask=False)
        assert_fails(c, 1002)


def test_unmasked_continuation_fails(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"masked ", fin=False)
        c.send_frame(OP_CONT, b"unmasked", mask=False)
        assert_fails(c, 1002)


def test_zero_mask_key_is_fine(echo):
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"zero mask", mask_key=b"\x00\x00\x00\x00")
        assert_echo(c, OP_TEXT, b"zero mask")


def test_non_minimal_length_accepted(echo):
    """RFC 6455 asks senders for minimal lengths but a receiver that checks it
    is not required; the contract has 7/16/64-bit lengths: both decode."""
    with connect(echo) as c:
        c.send_frame(OP_TEXT, b"short in 16 bits", length_form="16")
        f = c.recv_frame()
        if f.opcode == OP_CLOSE:
            assert f.close_code == 1002  # strict servers may reject it
            return
        assert f.payload == b"short in 16 bits"


# -- 9 Limits (max message size) ---------------------------------------------

@pytest.fixture(scope="module")
def small(proxy_mod):
    return proxy_mod(env={"WSPROXY_MAX_MESSAGE_SIZE": "65536"})


def test_max_size_exact_limit_ok(small):
    with connect(small) as c:
        c.send_binary(b"b" * 65536)
        assert_echo(c, OP_BINARY, b"b" * 65536)
        c.send_frame(OP_TEXT, b"t" * 40000, fin=False)
        c.send_frame(OP_CONT, b"t" * 25536)
        assert_echo(c, OP_TEXT, b"t" * 65536)
        assert_clean_close(c)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_max_size_single_frame_1009(small, opcode):
    with connect(small) as c:
        c.send_frame(opcode, b"a" * 65537)
        assert_fails(c, 1009)


def test_max_size_detected_from_header(small):
    """Only the header of a 10 MB frame is sent: 1009 comes without the
    payload."""
    with connect(small) as c:
        t0 = time.monotonic()
        c.send_raw(build_frame(OP_BINARY, b"", length=10_000_000)[:14])
        assert_fails(c, 1009, timeout=3)
        assert time.monotonic() - t0 < 3


def test_max_size_fragments_sum_over_limit(small):
    with connect(small) as c:
        c.send_frame(OP_BINARY, b"a" * 40000, fin=False)
        c.send_frame(OP_CONT, b"a" * 20000, fin=False)
        c.send_frame(OP_CONT, b"a" * 10000)  # 70000 > 65536
        assert_fails(c, 1009)


def test_max_size_fragment_header_over_limit(small):
    with connect(small) as c:
        c.send_frame(OP_TEXT, b"a" * 60000, fin=False)
        t0 = time.monotonic()
        c.send_raw(build_frame(OP_CONT, b"", length=10000)[:8])  # header only
        assert_fails(c, 1009, timeout=3)
        assert time.monotonic() - t0 < 3


def test_64bit_length_with_msb_set_fails(small):
    with connect(small) as c:
        c.send_raw(build_frame(OP_BINARY, b"", length=1 << 63)[:14])
        code, _ = c.expect_close(3)
        assert code in (1002, 1009), code


def test_max_size_default_1mib(echo):
    """Default max-message-size is 1 MiB: 1 MiB passes, 1 MiB + 1 fails."""
    with connect(echo) as c:
        c.send_binary(b"z" * (1 << 20))
        assert_echo(c, OP_BINARY, b"z" * (1 << 20))
        c.send_raw(build_frame(OP_BINARY, b"", length=(1 << 20) + 1)[:14])
        assert_fails(c, 1009, timeout=3)


# -- Keep-alive and idle timeout ---------------------------------------------

def test_server_keepalive_ping(proxy):
    p = proxy(env={"WSPROXY_WS_KEEP_ALIVE_INTERVAL": "1 second",
                   "WSPROXY_WS_IDLE_TIMEOUT": "4s"})
    with connect(p) as c:
        t0 = time.monotonic()
        f = c.recv_frame(timeout=4)
        took = time.monotonic() - t0
        assert f.opcode == OP_PING, f
        assert not f.masked and f.fin and len(f.payload) <= 125
        assert 0.5 <= took <= 3.0, "first ping after %.2f s" % took
        # Answering pings keeps the connection alive past the idle timeout.
        deadline = time.monotonic() + 6
        pings = 1
        c.send_frame(OP_PONG, f.payload)
        while time.monotonic() < deadline:
            try:
                f = c.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
            except socket.timeout:
                break
            assert f.opcode == OP_PING, "unexpected %r" % f
            pings += 1
            c.send_frame(OP_PONG, f.payload)
        assert pings >= 4, "only %d pings in ~7 s at 1 s interval" % pings
        c.send_text("still here")
        assert c.recv_message() == (OP_TEXT, b"still here")
        assert_clean_close(c)


def test_keepalive_ping_not_sent_while_client_talks(proxy):
    p = proxy(env={"WSPROXY_WS_KEEP_ALIVE_INTERVAL": "1500ms",
                   "WSPROXY_WS_IDLE_TIMEOUT": "60s"})
    with connect(p) as c:
        for i in range(8):
            c.send_text("busy %d" % i)
            f = c.recv_frame()
            assert f.opcode == OP_TEXT, "ping while the client is active: %r" % f
            time.sleep(0.4)


def test_idle_timeout_closes_1001(proxy):
    p = proxy(env={"WSPROXY_WS_IDLE_TIMEOUT": "2s",
                   "WSPROXY_WS_KEEP_ALIVE_INTERVAL": "0"})
    with connect(p) as c:
        # traffic resets the idle timer
        for i in range(3):
            time.sleep(1.0)
            c.send_text("keep me %d" % i)
            assert_echo(c, OP_TEXT, b"keep me %d" % i)
        t0 = time.monotonic()
        code, _ = c.expect_close(6, allow_data=False)
        took = time.monotonic() - t0
        assert code == 1001
        assert 1.5 <= took <= 4.5, "idle close after %.2f s (timeout 2 s)" % took
        c.send_close(1001)
        assert c.wait_tcp_close(5)


def test_idle_timeout_counts_pongs_and_pings_as_traffic(proxy):
    p = proxy(env={"WSPROXY_WS_IDLE_TIMEOUT": "2s",
                   "WSPROXY_WS_KEEP_ALIVE_INTERVAL": "0"})
    with connect(p) as c:
        for i in range(4):
            time.sleep(0.8)
            c.send_frame(OP_PING, b"%d" % i)
            f = c.recv_frame()
            assert (f.opcode, f.payload) == (OP_PONG, b"%d" % i), f
        c.send_text("alive")
        assert_echo(c, OP_TEXT, b"alive")


# -- Concurrency -------------------------------------------------------------

def test_200_concurrent_connections(echo):
    n_conns, n_msgs = 200, 5
    errors = []

    async def client(i):
        rnd = random.Random(i)
        try:
            async with websockets.connect(echo.ws_url("/echo"), max_size=None,
                                          open_timeout=20, ping_interval=None,
                                          compression=None) as ws:
                for j in range(n_msgs):
                    size = rnd.choice([0, 1, 100, 126, 5000, 70000])
                    if j % 2:
                        msg = bytes(rnd.getrandbits(8) for _ in range(min(size, 2000))) * (size // 2000 + 1)
                        msg = msg[:size]
                    else:
                        msg = ("c%d-m%d-" % (i, j)) + "é" * (size // 2)
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 30)
                    if got != msg:
                        errors.append("client %d msg %d: echo differs" % (i, j))
                        return
                    await asyncio.sleep(0.01)
        except Exception as e:  # noqa
            errors.append("client %d: %r" % (i, e))

    async def main():
        # open all first so they are really concurrent, then talk
        await asyncio.gather(*(client(i) for i in range(n_conns)))

    t0 = time.monotonic()
    asyncio.run(main())
    assert not errors, "%d errors, first: %s" % (len(errors), errors[:5])
    assert time.monotonic() - t0 < 60


def test_200_connections_open_at_once(echo):
    """All 200 are open at the same time (not serialised), each echoes."""
    conns = []
    try:
        for _ in range(200):
            conns.append(connect(echo, timeout=20))
        for i, c in enumerate(conns):
            c.send_text("hello %d" % i)
        for i, c in enumerate(conns):
            assert_echo(c, OP_TEXT, b"hello %d" % i)
        for c in conns:
            c.send_close(1000)
        for c in conns:
            code, _ = c.expect_close(10)
            assert code == 1000
    finally:
        for c in conns:
            c.close()


# -- Garbage clients next to good ones ---------------------------------------

def _garbage_cases(port):
    """(name, function) -> each returns None on the expected outcome or an
    error string."""
    rnd = random.Random(1234)

    def pre_handshake_random():
        c = WsRaw(port)
        with c:
            c.send_raw(bytes([rnd.randrange(0, 32)]) +
                       bytes(rnd.getrandbits(8) for _ in range(300)) + b"\r\n\r\n")
            try:
                r = c.read_response(timeout=5)
            except Closed:
                return "closed without an HTTP error"
            return None if r.status == 400 else "status %d" % r.status

    def handshake_then(frame_bytes, want):
        def run():
            c = WsRaw(port)
            with c:
                c.handshake("/echo")
                c.send_raw(frame_bytes)
                try:
                    code, _ = c.expect_close(5)
                except AssertionError as e:
                    return str(e)
                return None if code == want else "close %s, want %s" % (code, want)
        return run

    def post_handshake_random():
        c = WsRaw(port)
        with c:
            c.handshake("/echo")
            c.send_raw(bytes(rnd.getrandbits(8) for _ in range(2000)))
            c.wait_tcp_close(0.2)
        return None  # any outcome; the server must just survive

    def abrupt_mid_frame():
        c = WsRaw(port)
        c.handshake("/echo")
        c.send_raw(build_frame(OP_BINARY, b"q" * 100000)[:30000])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))  # RST on close
        c.close()
        return None

    def half_request():
        c = WsRaw(port)
        c.send_raw(b"GET /echo HTTP/1.1\r\nUpgrade: webs")
        c.close()
        return None

    def bad_key():
        c = WsRaw(port)
        with c:
            r = c.handshake("/echo", key="tooshort", expect=None)
            return None if r.status == 400 else "status %d" % r.status

    cases = [
        ("pre-handshake random", pre_handshake_random),
        ("unmasked", handshake_then(build_frame(OP_TEXT, b"x", mask=False), 1002)),
        ("rsv", handshake_then(build_frame(OP_TEXT, b"x", rsv=4), 1002)),
        ("opcode", handshake_then(build_frame(0xB, b"x"), 1002)),
        ("utf8", handshake_then(build_frame(OP_TEXT, b"\xed\xa0\x80"), 1007)),
        ("too big", handshake_then(build_frame(OP_BINARY, b"", length=50 << 20)[:14], 1009)),
        ("bad close", handshake_then(build_frame(OP_CLOSE, close_payload(1005)), 1002)),
        ("post-handshake random", post_handshake_random),
        ("abrupt mid-frame", abrupt_mid_frame),
        ("half request", half_request),
        ("bad key", bad_key),
    ]
    return cases


def test_garbage_clients_do_not_disturb_good_ones(echo):
    stop = threading.Event()
    good_errors, bad_errors = [], []
    counts = []

    async def good_client(i):
        n = 0
        try:
            async with websockets.connect(echo.ws_url("/echo"), max_size=None,
                                          ping_interval=None, compression=None,
                                          open_timeout=10) as ws:
                while not stop.is_set():
                    msg = "good %d/%d " % (i, n) + "x" * (n % 300)
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    if got != msg:
                        good_errors.append("client %d: bad echo" % i)
                        return
                    b = os.urandom(n % 1000)
                    await ws.send(b)
                    if await asyncio.wait_for(ws.recv(), 10) != b:
                        good_errors.append("client %d: bad binary echo" % i)
                        return
                    n += 1
        except Exception as e:  # noqa
            good_errors.append("client %d: %r" % (i, e))
        counts.append(n)

    def run_good():
        async def main():
            await asyncio.gather(*(good_client(i) for i in range(20)))
        asyncio.run(main())

    t = threading.Thread(target=run_good)
    t.start()
    try:
        time.sleep(0.5)
        cases = _garbage_cases(echo.port)
        t_end = time.monotonic() + 3.0  # at least 3 s of overlap
        rounds = 0
        while rounds < 3 or time.monotonic() < t_end:
            rounds += 1
            threads = []
            for name, fn in cases:
                def wrap(name=name, fn=fn):
                    try:
                        err = fn()
                    except Exception as e:  # noqa
                        err = repr(e)
                    if err:
                        bad_errors.append("%s: %s" % (name, err))
                th = threading.Thread(target=wrap)
                th.start()
                threads.append(th)
            for th in threads:
                th.join(30)
    finally:
        stop.set()
        t.join(60)
    assert not good_errors, good_errors[:5]
    assert len(counts) == 20 and min(counts) > 0, counts
    assert not bad_errors, bad_errors
    assert http_get(echo.port)[0] == 200


# -- Backpressure --------------------------------------------------------------

def _rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def test_backpressure_client_that_does_not_read(proxy):
    """A client sends 64 MiB of echo traffic without reading: the proxy
    stops reading from it (its send side blocks) instead of buffering, its
    memory stays bounded, and once the client reads, every echo arrives
    intact and in order."""
    p = proxy(env={"WSPROXY_MAX_BUFFERED_SEND_BYTES": "1 MiB"})
    msg_size, total = 256 * 1024, 64 * 1024 * 1024
    c = connect(p, timeout=10)
    with c:
        c.send_text("warm-up")
        assert_echo(c, OP_TEXT, b"warm-up")
        base = _rss_kib(p.proc.pid)
        c.sock.settimeout(2.0)
        sent = 0
        blocked = False
        frames = []
        while sent < total:
            payload = bytes([65 + (len(frames) % 26)]) * msg_size
            data = build_frame(OP_BINARY, payload)
            try:
                c.sock.sendall(data)
            except socket.timeout:
                blocked = True  # partial write possible: stop here
                break
            frames.append(payload)
            sent += msg_size
        grown = _rss_kib(p.proc.pid) - base
        assert blocked, "proxy accepted %d MiB from a client that never " \
            "reads (no backpressure)" % (sent >> 20)
        assert sent < 48 * 1024 * 1024, "%d MiB accepted before blocking" % (sent >> 20)
        assert grown < 64 * 1024, "proxy RSS grew by %d MiB" % (grown >> 10)
        # read back what was fully sent: exact and in order
        for payload in frames:
            f = c.recv_frame(timeout=20)
            assert f.opcode == OP_BINARY and f.payload == payload, f


# -- Resource hygiene ------------------------------------------------------------

def _fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_connection_churn_leaks_no_fds(echo):
    """1000 connections opened and ended every way (clean close, abrupt
    TCP close, protocol error, HTTP error, half request): the proxy's open
    file descriptors come back to where they were."""
    base = _fd_count(echo.proc.pid)
    for i in range(1000):
        kind = i % 5
        c = WsRaw(echo.port)
        try:
            if kind == 0:
                c.handshake("/echo")
                c.send_text("x")
                c.recv_frame()
                c.send_close(1000)
                c.expect_close(5)
            elif kind == 1:
                c.handshake("/echo")
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
            elif kind == 2:
                c.handshake("/echo")
                c.send_frame(OP_TEXT, b"x", mask=False)
                c.expect_close(5)
            elif kind == 3:
                c.send_raw(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
                c.read_response()
            else:
                c.send_raw(b"GET /echo HTTP/1.1\r\nUpg")
        finally:
            c.close()

    def settled():
        return _fd_count(echo.proc.pid) <= base + 2
    deadline = time.monotonic() + 10
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert settled(), "fds: %d before, %d after 1000 connections" % (
        base, _fd_count(echo.proc.pid))


def test_stalled_partial_frame_hits_idle_timeout(proxy):
    """A client that sends half a frame and stalls is closed 1001 after the
    WebSocket idle timeout (a slowloris cannot pin a connection)."""
    p = proxy(env={"WSPROXY_WS_IDLE_TIMEOUT": "2s",
                   "WSPROXY_WS_KEEP_ALIVE_INTERVAL": "0"})
    with connect(p) as c:
        c.send_raw(build_frame(OP_BINARY, b"q" * 1000)[:100])
        t0 = time.monotonic()
        code, _ = c.expect_close(6)
        assert code == 1001
        assert time.monotonic() - t0 <= 4.5
        assert c.wait_tcp_close(5)
