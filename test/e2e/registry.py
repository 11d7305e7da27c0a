"""A real Confluent-compatible schema registry for the end-to-end tests.

Apicurio Registry 2.6 (its Quarkus app, fetched by test/setup.sh into
~/.cache/kafka-ws-proxy/apicurio-registry-<version>; env KWP_APICURIO_HOME
overrides) serves the Confluent Schema Registry API under /apis/ccompat/v7.
It keeps its schemas in an H2 database file in its own directory, so a
restart on the same port (a "registry stopped mid-stream" test) finds the
same ids again. It needs no Kafka: ``kafka_bootstrap`` is accepted so that a
Kafka-backed registry could take its place without changing the tests.

    from registry import start_registry, registry  # `registry`: a fixture
    r = start_registry(kafka.bootstrap)   # blocks until the API answers
    r.url        # "http://127.0.0.1:PORT/apis/ccompat/v7"
    r.stop()     # SIGTERM, then SIGKILL after 10 s
    r.start()    # again, same port and data
    r.cleanup()  # stop and remove its directory

Every registry started is stopped at exit (atexit), and its JVM gets SIGKILL
when the process that started it dies (PR_SET_PDEATHSIG), so none outlives a
failed or interrupted run. Measured here (2 cores): up in 3.2 s, about
160 MB resident when idle with the JVM options below.
"""

import atexit
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

APICURIO_VERSION = os.environ.get("APICURIO_VERSION", "2.6.13.Final")
DEFAULT_HOME = os.path.expanduser(
    "~/.cache/kafka-ws-proxy/apicurio-registry-%s" % APICURIO_VERSION)
API_PATH = "/apis/ccompat/v7"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
JVM_OPTS = ["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1", "-Xshare:auto"]

_REGISTRIES = []


class RegistryError(RuntimeError):
    pass


def apicurio_home():
    return os.environ.get("KWP_APICURIO_HOME") or DEFAULT_HOME


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _java():
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    j = shutil.which("java")
    if not j:
        raise RegistryError("java not found (install default-jre-headless)")
    return j


def _die_with_parent():
    # Runs in the child between fork and exec: SIGKILL when pytest dies.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no log at %s)" % path
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Registry:
    """One Apicurio Registry process on 127.0.0.1 (see the module's doc)."""

    def __init__(self, kafka_bootstrap=None, port=None, workdir=None,
                 home=None):
        self.kafka_bootstrap = kafka_bootstrap
        self.home = home or apicurio_home()
        self.jar = os.path.join(
            self.home, "apicurio-registry-app-%s-runner.jar" % APICURIO_VERSION)
        if not os.path.exists(self.jar):
            raise RegistryError("Apicurio Registry not found at %s (run "
                                "`make setup` or set KWP_APICURIO_HOME)"
                                % self.jar)
        self._own_dir = workdir is None
        self.workdir = os.path.abspath(
            workdir or tempfile.mkdtemp(prefix="kwp-registry-"))
        os.makedirs(self.workdir, exist_ok=True)
        self.log_path = os.path.join(self.workdir, "registry.log")
        self.port = port or _free_port()
        self.proc = None
        self.started_in = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def url(self):
        """The base URL of the Confluent-compatible API."""
        return self.base + API_PATH

    def start(self, timeout=READY_TIMEOUT):
        if self.is_running():
            return self
        t0 = time.monotonic()
        db = "jdbc:h2:file:%s;DB_CLOSE_ON_EXIT=FALSE" % os.path.join(
            self.workdir, "db")
        cmd = [_java()] + JVM_OPTS + [
            "-Dquarkus.http.host=127.0.0.1",
            "-Dquarkus.http.port=%d" % self.port,
            "-Dquarkus.datasource.jdbc.url=%s" % db,
            "-Dquarkus.datasource.jdbc.initial-size=2",
            "-Dquarkus.datasource.jdbc.min-size=2",
            "-Dquarkus.log.console.color=false",
            "-jar", self.jar]
        out = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.workdir,
                preexec_fn=_die_with_parent)
        finally:
            out.close()
        if self not in _REGISTRIES:
            _REGISTRIES.append(self)
        self._wait_ready(timeout)
        self.started_in = time.monotonic() - t0
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after @timeout s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            except ProcessLookupError:
                pass
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cleanup(self):
        """Stop, and remove the directory if this object made it."""
        self.stop()
        if self in _REGISTRIES:
            _REGISTRIES.remove(self)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        """Resident memory of the JVM, in KiB (None when not running)."""
        if not self.is_running():
            return None
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_tail(self, lines=40):
        return "--- %s ---\n%s" % (self.log_path, _tail(self.log_path, lines))

    def get(self, path, timeout=2.0):
        """GET @path under the API -> (status, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", API_PATH + path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RegistryError("schema registry exited with %s during "
                                    "startup\n%s" % (rc, self.log_tail()))
            try:
                st, body = self.get("/subjects", timeout=1.0)
                if st == 200:
                    return
                last = "status %s %r" % (st, body[:200])
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.1)
        self.kill()
        raise RegistryError("schema registry not ready after %.0f s on %s "
                            "(last: %s)\n%s" % (timeout, self.base, last,
                                                self.log_tail()))


def start_registry(kafka_bootstrap=None, port=None, **kw):
    """Start a registry (blocks until its API answers); stopped at exit."""
    r = Registry(kafka_bootstrap, port=port, **kw)
    try:
        r.start()
    except RegistryError:
        r.cleanup()
        raise
    return r


def _cleanup_registries():
    while _REGISTRIES:
        r = _REGISTRIES.pop()
        try:
            r.cleanup()
        except Exception:
            pass


atexit.register(_cleanup_registries)


@pytest.fixture(scope="module")
def registry():
    """A registry for one test module (import this name into the module),
    torn down when the module's tests are done, whatever happened. It does
    not ask for the ``kafka`` fixture: Apicurio does not need the broker."""
    try:
        r = start_registry()
    except RegistryError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield r
    finally:
        r.cleanup()


if __name__ == "__main__":
    # python3 test/e2e/registry.py: start one, print its URL, wait for Ctrl-C.
    reg = start_registry()
    print("%s (up in %.1f s, RSS %s KiB; log %s)" % (
        reg.url, reg.started_in, reg.rss_kib(), reg.log_path), flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        reg.cleanup()
    sys.exit(0)
