"""Fixtures for the end-to-end suite.

- ``kafka``: one real single-node KRaft broker (test/kafka/broker.py) for the
  whole run, torn down at the end even on failure / Ctrl-C (and via atexit).
- ``proxy``: a factory starting the kafka-ws-proxy binary (env KWP_BIN,
  default build/kafka-ws-proxy) on a free port; each proxy started is stopped
  with SIGTERM at the end of the test and must exit 0 within 10 s, and its
  stderr must hold no sanitizer report.
- ``proxy_mod``: the same factory, module-scoped (for proxies shared by the
  many small tests of one module).
"""

import atexit
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "kafka"))
sys.path.insert(0, HERE)

import broker as kafka_broker  # noqa: E402

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer")
HEALTH_TIMEOUT = 20.0
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def proxy_bin():
    b = os.environ.get("KWP_BIN", "build/kafka-ws-proxy")
    if not os.path.isabs(b):
        b = os.path.join(ROOT, b)
    return b


def proxy_is_asan():
    """Whether the proxy under test is an AddressSanitizer build (its own
    allocator: glibc's malloc statistics and trimming do not apply)."""
    try:
        with open(proxy_bin(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (as far as we can tell)."""
    return free_port()


def sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0:
            return text[max(0, i - 200):i + 4000]
    return None


def base_env(extra=None, drop=()):
    """The environment for a proxy: ours, minus any WSPROXY_*/WS_PROXY_*
    inherited from the caller's shell (tests must be hermetic)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WSPROXY_", "WS_PROXY_"))}
    if "ASAN_OPTIONS" not in env:
        env["ASAN_OPTIONS"] = "detect_leaks=1"
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    for k in drop:
        env.pop(k, None)
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
    return env


def run_binary(args, env=None, timeout=20):
    """Run the binary to completion (config checks, --print-config)."""
    r = subprocess.run([proxy_bin()] + list(args), env=base_env(env),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    rep = sanitizer_report(out + err)
    if rep:
        pytest.fail("sanitizer report from %s:\n%s" % (args, rep))
    return r.returncode, out, err


def http_get(port, path="/healthcheck", method="GET", timeout=5.0,
             headers=None):
    """One HTTP request on a fresh connection -> (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


class Proxy:
    """A running kafka-ws-proxy process."""

    def __init__(self, workdir, env, args, expect_exit, name):
        self.workdir = workdir
        self.env = env
        self.args = args
        self.expect_exit = expect_exit
        self.name = name
        self.port = int(env["WSPROXY_PORT"]) if "WSPROXY_PORT" in env else None
        self.stderr_path = os.path.join(workdir, "%s.stderr" % name)
        self.stdout_path = os.path.join(workdir, "%s.stdout" % name)
        self.proc = None
        self.returncode = None

    # -- lifecycle ------------------------------------------------------

    def start(self):
        errf = open(self.stderr_path, "wb")
        outf = open(self.stdout_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [proxy_bin()] + list(self.args), env=self.env,
                stdin=subprocess.DEVNULL, stdout=outf, stderr=errf,
                cwd=self.workdir)
        finally:
            errf.close()
            outf.close()
        return self

    def wait_healthy(self, timeout=HEALTH_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                pytest.fail("proxy exited with %s before answering "
                            "/healthcheck; args %s\nstderr:\n%s" % (
                                self.returncode, self.args, self.stderr()))
            try:
                st, _, _ = http_get(self.port, "/healthcheck", timeout=1.0)
                if st == 200:
                    return self
                last = "status %s" % st
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        pytest.fail("proxy did not answer GET /healthcheck with 200 within "
                    "%.0f s (last: %s)\nstderr:\n%s" % (timeout, last,
                                                       self.stderr()))

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Wait for GET /ready == 200 (session state restored, node joined)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                pytest.fail("proxy exited with %s before it was ready\n"
                            "stderr:\n%s" % (self.returncode, self.stderr()))
            try:
                st, _, body = http_get(self.port, "/ready", timeout=1.0)
                if st == 200:
                    return self
                last = "status %s %s" % (st, body)
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        pytest.fail("proxy not ready within %.0f s (last: %s)\nstderr:\n%s"
                    % (timeout, last, self.stderr()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal and wait; SIGKILL after @timeout. Returns (rc, seconds)."""
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            return self.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.wait(timeout)
        took = time.monotonic() - t0
        if rc is None:
            self.proc.kill()
            self.proc.wait()
            self.returncode = "timeout (killed after %.0f s)" % timeout
            return self.returncode, took
        return rc, took

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # -- output ---------------------------------------------------------

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=40):
        return "\n".join(self.stderr().splitlines()[-n:])

    def check_sanitizer(self):
        rep = sanitizer_report(self.stderr())
        if rep:
            pytest.fail("sanitizer report in proxy %s stderr:\n%s" % (
                self.name, rep))

    def assert_alive(self):
        self.check_sanitizer()
        if not self.alive():
            pytest.fail("proxy %s died (exit %s)\nstderr tail:\n%s" % (
                self.name, self.proc.returncode, self.stderr_tail()))

    # -- addresses ------------------------------------------------------

    @property
    def http_url(self):
        return "http://127.0.0.1:%d" % self.port

    def ws_url(self, path="/echo"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path="/healthcheck", **kw):
        return http_get(self.port, path, **kw)

    def finish(self):
        """Teardown: stop with SIGTERM and check the exit code and stderr.
        Returns a list of problems (strings)."""
        problems = []
        if self.proc is None:
            return problems
        rc, took = self.stop()
        if self.expect_exit is not None and rc != self.expect_exit:
            problems.append(
                "proxy %s: exit code %r after SIGTERM (%.1f s), expected %r"
                "\nstderr tail:\n%s" % (self.name, rc, took, self.expect_exit,
                                        self.stderr_tail()))
        rep = sanitizer_report(self.stderr())
        if rep:
            problems.append("proxy %s: sanitizer report:\n%s" % (self.name,
                                                                 rep))
        return problems


class ProxyFactory:
    def __init__(self, kafka, workdir):
        self.kafka = kafka
        self.workdir = workdir
        self.started = []

    def __call__(self, env=None, args=(), config=None, echo=True,
                 bootstrap="kafka", expect_exit=0, wait=True, port=None,
                 health_timeout=HEALTH_TIMEOUT, ready=None):
        """Start a proxy.

        env: extra environment (value None removes a variable).
        args: extra command-line arguments.
        config: text of a HOCON file passed with --config.
        echo: WSPROXY_ECHO_ENDPOINT_ENABLED (None: leave unset).
        bootstrap: "kafka" (the session broker), None (unset), or a string.
        expect_exit: the exit code required at teardown (None: any).
        wait: wait for GET /healthcheck == 200.
        ready: also wait for GET /ready == 200 (default: when the proxy
          talks to the test broker or runs in dev mode).
        Each proxy gets its own server-id and a fast session heartbeat
        unless env says otherwise.
        """
        name = "proxy%d" % len(self.started)
        port = port or free_port()
        e = {"WSPROXY_PORT": str(port),
             "WSPROXY_BIND_INTERFACE": "127.0.0.1",
             "WSPROXY_SERVER_ID": "test-%d-%s" % (os.getpid(), port),
             "WSPROXY_SESSION_HEARTBEAT_INTERVAL": "200ms",
             "WSPROXY_SESSION_NODE_TTL": "3 seconds"}
        if echo is not None:
            e["WSPROXY_ECHO_ENDPOINT_ENABLED"] = "true" if echo else "false"
        if bootstrap == "kafka":
            e["WSPROXY_KAFKA_BOOTSTRAP_HOSTS"] = self.kafka().bootstrap
        elif bootstrap is not None:
            e["WSPROXY_KAFKA_BOOTSTRAP_HOSTS"] = bootstrap
        if env:
            e.update(env)
        args = list(args)
        if config is not None:
            cpath = os.path.join(self.workdir, "%s.conf" % name)
            with open(cpath, "w") as f:
                f.write(config)
            args = ["--config", cpath] + args
        p = Proxy(self.workdir, base_env(e), args, expect_exit, name)
        if p.port is None:
            p.port = port
        p.start()
        self.started.append(p)
        if ready is None:
            ready = bootstrap == "kafka" or "--dev" in args
        if wait:
            p.wait_healthy(health_timeout)
            if ready:
                p.wait_ready()
        return p

    def finish(self):
        problems = []
        for p in self.started:
            try:
                problems += p.finish()
            except Exception as ex:  # keep stopping the others
                problems.append("proxy %s: teardown error %r" % (p.name, ex))
        self.started = []
        return problems


# -- Kafka ------------------------------------------------------------------

_BROKERS = []


def _cleanup_brokers():
    while _BROKERS:
        b = _BROKERS.pop()
        try:
            b.cleanup()
        except Exception:
            pass


atexit.register(_cleanup_brokers)


def _sigterm_to_interrupt(signum, frame):
    # Stop the brokers right away (they run in their own sessions, so no
    # signal reaches them), then unwind pytest like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _cleanup_brokers()
    raise KeyboardInterrupt("SIGTERM")


def start_broker(**kw):
    """Start an extra broker (tests of the harness, broker restarts); it is
    also stopped at exit."""
    b = kafka_broker.KafkaBroker(**kw)
    _BROKERS.append(b)
    try:
        b.start()
    except kafka_broker.BrokerError as e:
        pytest.fail(str(e))
    return b


class _KafkaHolder:
    """The session broker, started on first use (dev-mode and config tests
    do not need one)."""

    def __init__(self):
        self.broker = None

    def __call__(self):
        if self.broker is None:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                # So a SIGTERM to pytest still tears the broker down.
                signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
            self.broker = start_broker()
        return self.broker

    def cleanup(self):
        b, self.broker = self.broker, None
        if b is not None:
            try:
                b.cleanup()
            finally:
                if b in _BROKERS:
                    _BROKERS.remove(b)


@pytest.fixture(scope="session")
def kafka_holder():
    h = _KafkaHolder()
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture(scope="session")
def kafka(kafka_holder):
    """The session's real Kafka broker (one for the whole run)."""
    return kafka_holder()


def _require_binary():
    b = proxy_bin()
    if not os.path.exists(b):
        pytest.fail("proxy binary %s does not exist (build it with `make "
                    "all`, or set KWP_BIN)" % b)


@pytest.fixture
def proxy(kafka_holder, tmp_path):
    _require_binary()
    f = ProxyFactory(kafka_holder, str(tmp_path))
    yield f
    problems = f.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def proxy_mod(kafka_holder, tmp_path_factory):
    _require_binary()
    f = ProxyFactory(kafka_holder,
                     str(tmp_path_factory.mktemp("proxy_mod")))
    yield f
    problems = f.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def pytest_report_header(config):
    return ["kafka-ws-proxy binary: %s%s" % (
        proxy_bin(), "" if os.path.exists(proxy_bin()) else " (MISSING)"),
        "kafka jars: %s" % kafka_broker.libs_dir()]


# -- helpers shared by test modules -----------------------------------------

def assert_json_error(status, headers, body, want_status, want_message=None,
                      prefix=None):
    """An error response: status, Content-Type application/json, and a body
    that is a JSON object with exactly one key, "message"."""
    assert status == want_status, "status %s, expected %s; body %r" % (
        status, want_status, body[:300])
    ct = headers.get("content-type", "")
    assert ct.split(";")[0].strip().lower() == "application/json", \
        "Content-Type %r" % ct
    try:
        obj = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise AssertionError("error body is not JSON (%s): %r" % (e, body))
    assert isinstance(obj, dict) and list(obj.keys()) == ["message"], \
        "error body must be {\"message\": ...}, got %r" % (obj,)
    assert isinstance(obj["message"], str)
    if want_message is not None:
        assert obj["message"] == want_message
    if prefix is not None:
        assert obj["message"].startswith(prefix), obj["message"]
    return obj["message"]


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


def shell_env_line(env):
    return " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items())


# -- Kafka helpers shared by the produce tests -------------------------------

def create_topic(bootstrap, partitions=3, prefix="t"):
    """Create a uniquely named topic on the real broker and return its name."""
    from confluent_kafka.admin import AdminClient, NewTopic
    import uuid
    name = "%s-%s" % (prefix, uuid.uuid4().hex[:10])
    admin = AdminClient({"bootstrap.servers": bootstrap})  # keep it alive
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(timeout=30)
    return name


def consume_all(bootstrap, topic, expect, timeout=30,
                isolation="read_uncommitted"):
    """Read @topic from the start until @expect records have come (then a
    little longer, so duplicates would show). Returns confluent Messages."""
    from confluent_kafka import Consumer
    import uuid
    c = Consumer({"bootstrap.servers": bootstrap,
                  "group.id": "chk-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest",
                  "isolation.level": isolation,
                  "enable.auto.commit": False})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            out += [m for m in c.consume(num_messages=1000, timeout=0.5)
                    if not m.error()]
        out += [m for m in c.consume(num_messages=1000, timeout=1.0)
                if not m.error()]
    finally:
        c.close()
    return out


def read_assigned(bootstrap, topic, n, partitions=(0,), start=0, timeout=20):
    """Read up to @n records from @partitions of @topic, starting at offset
    @start, with a plain assigned consumer (no group rebalance to wait for).
    Returns confluent Messages; a consumer error fails the test."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    import uuid
    c = Consumer({"bootstrap.servers": bootstrap,
                  "group.id": "e2e-" + uuid.uuid4().hex,
                  "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError("consumer error: %s" % m.error())
            out.append(m)
        return out
    finally:
        c.close()
