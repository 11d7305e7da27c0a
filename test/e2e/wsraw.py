"""A raw WebSocket / HTTP client on plain sockets, for byte-level tests.

    c = WsRaw(port)                      # TCP connect
    st, hdrs = c.handshake("/echo")      # 101 expected for WebSocket
    c.send_frame(OP_TEXT, b"hi")         # masked, FIN, no RSV by default
    f = c.recv_frame()                   # Frame(fin, rsv, opcode, payload, masked)
    code, reason = c.expect_close()      # read until a close frame
    c.wait_tcp_close()                   # True once the server closed TCP

Everything can be bent: unmasked frames, RSV bits, any opcode, bogus
lengths, frames split into tiny TCP writes, handshakes with any headers.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    """The TCP connection was closed (EOF or reset) by the peer."""


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "payload", "masked", "minimal")

    def __init__(self, fin, rsv, opcode, payload, masked, minimal):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.payload, self.masked, self.minimal = payload, masked, minimal

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:]

    def __repr__(self):
        p = self.payload
        return "Frame(fin=%d rsv=%d op=0x%x len=%d%s%s payload=%r)" % (
            self.fin, self.rsv, self.opcode, len(p),
            " MASKED" if self.masked else "",
            "" if self.minimal else " NON-MINIMAL-LENGTH",
            p[:60] + (b"..." if len(p) > 60 else b""))


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0,
                mask_key=None, length=None, length_form=None):
    """Bytes of one frame.

    rsv: 3-bit value (4 = RSV1, 2 = RSV2, 1 = RSV3).
    length: the length to declare (default len(payload)).
    length_form: force "7", "16" or "64" bit encoding (default minimal).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    form = length_form or ("7" if n <= 125 else "16" if n <= 0xFFFF else "64")
    if form == "7":
        hdr = struct.pack("!BB", b0, mbit | n)
    elif form == "16":
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        mk = mask_key if mask_key is not None else os.urandom(4)
        return hdr + mk + mask_bytes(payload, mk)
    return hdr + payload


def mask_bytes(data, key):
    if not data:
        return b""
    # XOR via big ints: fast for MiB-sized payloads.
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(
        n, "big")


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class HttpResponse:
    def __init__(self, status, reason, headers, body, version):
        self.status, self.reason, self.version = status, reason, version
        self.header_list = headers  # [(name-lower, value)]
        self.headers = {}
        for k, v in headers:
            self.headers[k] = v if k not in self.headers else \
                self.headers[k] + ", " + v
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "HttpResponse(%d %s, %r, body=%r)" % (
            self.status, self.reason, self.headers, self.body[:200])


class WsRaw:
    def __init__(self, port, host="127.0.0.1", timeout=5.0, connect=True):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.buf = b""
        self.eof = False
        if connect:
            self.connect()

    # -- TCP ------------------------------------------------------------

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port),
                                             timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send_raw(self, data, chunk=None, delay=0.0):
        """Write bytes, optionally in @chunk-byte writes with @delay between.
        Returns False if the peer closed/reset the connection meanwhile."""
        try:
            if not chunk:
                self.sock.sendall(data)
                return True
            for i in range(0, len(data), chunk):
                self.sock.sendall(data[i:i + chunk])
                if delay:
                    time.sleep(delay)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        """Read more bytes into self.buf; raises Closed on EOF / reset,
        socket.timeout at the deadline."""
        if self.eof:
            raise Closed("connection closed by peer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError) as e:
            self.eof = True
            raise Closed("connection reset: %s" % e)
        if not data:
            self.eof = True
            raise Closed("connection closed by peer")
        self.buf += data

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_tcp_close(self, timeout=5.0):
        """True when the server closes the TCP connection (EOF or RST)
        within @timeout; any bytes received meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except Closed:
            return True
        except socket.timeout:
            return False

    def is_open_after(self, seconds):
        """True when the server did NOT close the connection for @seconds."""
        return not self.wait_tcp_close(seconds)

    # -- HTTP -----------------------------------------------------------

    def handshake_request(self, path="/echo", headers=None, key=None,
                          version="13", omit=(), method="GET",
                          http_version="HTTP/1.1"):
        self.key = key if key is not None else new_key()
        h = [("Host", "%s:%d" % (self.host, self.port)),
             ("Upgrade", "websocket"),
             ("Connection", "Upgrade"),
             ("Sec-WebSocket-Key", self.key),
             ("Sec-WebSocket-Version", version)]
        omit_l = {o.lower() for o in omit}
        extra = list((headers or {}).items()) if isinstance(headers, dict) \
            else list(headers or [])
        extra_names = {k.lower() for k, _ in extra}
        h = [(k, v) for k, v in h
             if k.lower() not in omit_l and k.lower() not in extra_names]
        h += extra
        lines = ["%s %s %s" % (method, path, http_version)] + \
            ["%s: %s" % kv for kv in h]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def handshake(self, path="/echo", headers=None, key=None, version="13",
                  omit=(), chunk=None, delay=0.0, expect=101):
        """Send an upgrade request and read the response head (and the body
        of a non-101 response). Asserts the status when @expect is set and,
        for 101, Sec-WebSocket-Accept. Returns the HttpResponse."""
        req = self.handshake_request(path, headers, key, version, omit)
        self.send_raw(req, chunk=chunk, delay=delay)
        r = self.read_response(body=True if expect != 101 else None)
        if expect is not None:
            assert r.status == expect, "handshake: %r" % (r,)
        if r.status == 101:
            assert r.headers.get("sec-websocket-accept") == \
                accept_key(self.key), r.headers
            assert r.headers.get("upgrade", "").lower() == "websocket", \
                r.headers
            assert "upgrade" in r.headers.get("connection", "").lower(), \
                r.headers
        return r

    def read_response(self, body=None, head_request=False, timeout=None):
        """Read one HTTP response. body=None: read the body unless 101;
        the body is delimited by Content-Length, chunked, or EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or \
                not parts[1].isdigit():
            raise AssertionError("not an HTTP response: %r" % head[:200])
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        hdrs = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.append((k.strip().lower(), v.strip()))
        hmap = dict(hdrs)
        data = b""
        want_body = body if body is not None else status != 101
        if want_body and not head_request and status not in (101, 204, 304) \
                and not 100 <= status < 200:
            if "content-length" in hmap:
                data = self._read_exact(int(hmap["content-length"]), deadline)
            elif "chunked" in hmap.get("transfer-encoding", "").lower():
                data = self._read_chunked(deadline)
            else:
                try:
                    while True:
                        self._fill(deadline)
                except Closed:
                    pass
                data, self.buf = self.buf, b""
        return HttpResponse(status, reason, hdrs, data, version)

    def _read_chunked(self, deadline):
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            if n == 0:
                while b"\r\n" not in self.buf:
                    self._fill(deadline)
                self.buf = self.buf.split(b"\r\n", 1)[1]
                return out
            out += self._read_exact(n, deadline)
            self._read_exact(2, deadline)

    # -- WebSocket ------------------------------------------------------

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0,
                   chunk=None, delay=0.0, **kw):
        return self.send_raw(build_frame(opcode, payload, fin=fin, mask=mask,
                                         rsv=rsv, **kw), chunk=chunk,
                             delay=delay)

    def send_text(self, s, **kw):
        return self.send_frame(OP_TEXT, s, **kw)

    def send_binary(self, b, **kw):
        return self.send_frame(OP_BINARY, b, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        return self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def recv_frame(self, timeout=None):
        """One frame from the server. Raises Closed / socket.timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None
                                       else self.timeout)
        b0, b1 = self._read_exact(2, deadline)
        fin, rsv, op = b0 >> 7, (b0 >> 4) & 7, b0 & 0xF
        masked, n = b1 >> 7, b1 & 0x7F
        minimal = True
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2, deadline))[0]
            minimal = n > 125
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8, deadline))[0]
            minimal = n > 0xFFFF
        mk = self._read_exact(4, deadline) if masked else None
        payload = self._read_exact(n, deadline)
        if mk:
            payload = mask_bytes(payload, mk)
        return Frame(fin, rsv, op, payload, bool(masked), minimal)

    def recv_message(self, timeout=None, answer_pings=True):
        """A whole data message (opcode, payload), reassembling fragments;
        pings are answered (when @answer_pings) and pongs skipped. Returns
        ("close", frame) when a close frame arrives instead."""
        deadline = time.monotonic() + (timeout if timeout is not None
                                       else self.timeout)
        op, parts = None, []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                if answer_pings:
                    self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                return "close", f
            if op is None:
                op = f.opcode
            parts.append(f.payload)
            if f.fin:
                return op, b"".join(parts)

    def expect_close(self, timeout=5.0, allow_data=True):
        """Read frames until a close frame; returns (code, reason_bytes);
        code is None for an empty close payload. Raises AssertionError when
        the TCP connection ends without a close frame, or on timeout."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except Closed as e:
                raise AssertionError(
                    "TCP closed (%s) without a close frame; frames before: %r"
                    % (e, seen))
            except socket.timeout:
                raise AssertionError(
                    "no close frame within %.1f s; frames before: %r"
                    % (timeout, seen))
            if f.opcode == OP_CLOSE:
                assert not f.masked, "server close frame is masked"
                return f.close_code, f.close_reason
            if not allow_data and f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                raise AssertionError("data frame before the close: %r" % f)
            seen.append(f)


def raw_http(port, data, timeout=5.0, read_until_close=False, chunk=None,
             delay=0.0, head_request=False):
    """Send raw bytes, read one response. Returns (HttpResponse, WsRaw)."""
    c = WsRaw(port, timeout=timeout)
    c.send_raw(data, chunk=chunk, delay=delay)
    r = c.read_response(head_request=head_request)
    return r, c


def http_request_bytes(method, path, headers=None, body=b"",
                       version="HTTP/1.1", host="127.0.0.1"):
    h = [("Host", host)]
    h += list((headers or {}).items()) if isinstance(headers, dict) \
        else list(headers or [])
    if body and not any(k.lower() in ("content-length", "transfer-encoding")
                        for k, _ in h):
        h.append(("Content-Length", str(len(body))))
    lines = ["%s %s %s" % (method, path, version)] + \
        ["%s: %s" % kv for kv in h]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
