#!/usr/bin/env python3
"""A single-node KRaft Apache Kafka 3.9.x broker for tests, without Docker.

Runs the broker from the jars cached by test/setup.sh (env KWP_KAFKA_LIBS
overrides the location) on free loopback ports in a directory of its own.

As a module:

    from broker import KafkaBroker
    b = KafkaBroker()          # or KafkaBroker(workdir=...)
    b.start()                  # returns once metadata answers (up to 90 s)
    b.bootstrap                # "127.0.0.1:PORT"
    b.restart()                # same ports, same data directory
    b.stop()                   # SIGTERM, up to 30 s, then SIGKILL
    b.kill()                   # SIGKILL

From the command line:

    python3 test/kafka/broker.py start DIR   # prints the bootstrap, leaves it running
    python3 test/kafka/broker.py stop DIR
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "3.9.2")
DEFAULT_LIBS = os.path.expanduser(
    "~/.cache/kafka-ws-proxy/kafka-%s/libs" % KAFKA_VERSION)
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={logdir}/server.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""


class BrokerError(RuntimeError):
    pass


def libs_dir():
    return os.environ.get("KWP_KAFKA_LIBS") or DEFAULT_LIBS


def free_port():
    """A currently free TCP port on 127.0.0.1 (as free as the OS says)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The JVM settings tests run the broker with: a small heap.
TEST_JVM_OPTS = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC"]
# Those Kafka's own scripts start a broker with (kafka-server-start.sh's heap,
# kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS), for benchmarks: with
# G1's default pause goal (200 ms) young collections of the benchmark broker
# took 88 and 108 ms during latency rounds; with a 20 ms goal most take 20
# to 40 ms.
KAFKA_SCRIPT_JVM_OPTS = ["-Xms1g", "-Xmx1g", "-XX:+UseG1GC",
                         "-XX:MaxGCPauseMillis=20",
                         "-XX:InitiatingHeapOccupancyPercent=35",
                         "-XX:+ExplicitGCInvokesConcurrent"]


def _java():
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return os.path.join(home, "bin", "java")
    j = shutil.which("java")
    if not j:
        raise BrokerError("java not found (install default-jre-headless)")
    return j


def _tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "(no log at %s)" % path
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def metadata_ok(bootstrap, timeout=2.0):
    """True when the broker answers a metadata request and lists itself."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap,
                         "socket.timeout.ms": int(timeout * 1000),
                         "log_level": 0})
    try:
        md = admin.list_topics(timeout=timeout)
        return len(md.brokers) > 0
    except Exception:
        return False


class KafkaBroker:
    def __init__(self, workdir=None, libs=None, port=None, controller_port=None,
                 extra_props=None, jvm_opts=None):
        self.libs = libs or libs_dir()
        if not os.path.isdir(self.libs) or not os.listdir(self.libs):
            raise BrokerError(
                "Kafka jars not found in %s (run `make setup` or set "
                "KWP_KAFKA_LIBS)" % self.libs)
        self._own_dir = workdir is None
        self.workdir = os.path.abspath(
            workdir or tempfile.mkdtemp(prefix="kwp-kafka-"))
        os.makedirs(self.workdir, exist_ok=True)
        self.datadir = os.path.join(self.workdir, "data")
        self.logdir = os.path.join(self.workdir, "logs")
        self.props_path = os.path.join(self.workdir, "server.properties")
        self.log4j_path = os.path.join(self.workdir, "log4j.properties")
        self.stdout_path = os.path.join(self.workdir, "broker.out")
        self.pid_path = os.path.join(self.workdir, "broker.pid")
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.extra_props = dict(extra_props or {})
        self.jvm_opts = list(jvm_opts or TEST_JVM_OPTS)
        self.proc = None
        self._formatted = False

    # -- public ---------------------------------------------------------

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    @property
    def log_path(self):
        return os.path.join(self.logdir, "server.log")

    def start(self, timeout=READY_TIMEOUT):
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._write_config()
        if not self._formatted:
            self._format()
        self._launch()
        self._wait_ready(timeout)
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """Controlled shutdown: SIGTERM, then SIGKILL after @timeout s."""
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
        self._rm_pid()
        return rc

    def kill(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self._rm_pid()
        return rc

    def restart(self, timeout=READY_TIMEOUT):
        """Stop (controlled) and start again on the same ports and data."""
        self.stop()
        self._launch()
        self._wait_ready(timeout)
        return self

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        """Stop and remove the directory if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines=60):
        out = _tail(self.log_path, lines)
        so = _tail(self.stdout_path, 20)
        return "--- %s ---\n%s\n--- %s ---\n%s" % (
            self.log_path, out, self.stdout_path, so)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- internals ------------------------------------------------------

    def _classpath(self):
        return os.path.join(self.libs, "*")

    def _write_config(self):
        os.makedirs(self.datadir, exist_ok=True)
        os.makedirs(self.logdir, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": "1@127.0.0.1:%d" % self.controller_port,
            "listeners": "PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d"
                         % (self.port, self.controller_port),
            "advertised.listeners": "PLAINTEXT://127.0.0.1:%d" % self.port,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map":
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.datadir,
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "1",
            "num.io.threads": "2",
            "log.cleaner.dedupe.buffer.size": "2097152",
            "log.cleaner.backoff.ms": "500",
            "controlled.shutdown.enable": "true",
        }
        props.update({k: str(v) for k, v in self.extra_props.items()})
        with open(self.props_path, "w") as f:
            for k, v in props.items():
                f.write("%s=%s\n" % (k, v))
        with open(self.log4j_path, "w") as f:
            f.write(LOG4J_PROPERTIES.format(logdir=self.logdir))

    def _java_base(self):
        return [_java()] + self.jvm_opts + [
            "-Djava.awt.headless=true",
            "-Dlog4j.configuration=file:%s" % self.log4j_path,
            "-Dkafka.logs.dir=%s" % self.logdir,
            "-cp", self._classpath()]

    def _format(self):
        tool = self._java_base() + ["kafka.tools.StorageTool"]
        if os.path.exists(os.path.join(self.datadir, "meta.properties")):
            self._formatted = True
            return
        r = subprocess.run(tool + ["random-uuid"], capture_output=True,
                           text=True, timeout=120)
        if r.returncode != 0:
            raise BrokerError("StorageTool random-uuid failed (%d): %s%s" % (
                r.returncode, r.stdout, r.stderr))
        self.cluster_id = r.stdout.strip().splitlines()[-1].strip()
        r = subprocess.run(tool + ["format", "-t", self.cluster_id, "-c",
                                   self.props_path, "--ignore-formatted"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BrokerError("StorageTool format failed (%d): %s%s" % (
                r.returncode, r.stdout, r.stderr))
        self._formatted = True

    def _launch(self):
        cmd = self._java_base() + ["kafka.Kafka", self.props_path]
        out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.workdir,
                start_new_session=True)
        finally:
            out.close()
        with open(self.pid_path, "w") as f:
            f.write("%d\n" % self.proc.pid)

    def _rm_pid(self):
        try:
            os.unlink(self.pid_path)
        except OSError:
            pass

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                self._rm_pid()
                msg = "Kafka broker exited with %s during startup\n%s" % (
                    rc, self.log_tail())
                print(msg, file=sys.stderr)
                raise BrokerError(msg)
            if metadata_ok(self.bootstrap, timeout=2.0):
                return
            time.sleep(0.2)
        msg = "Kafka broker not ready after %.0f s on %s\n%s" % (
            timeout, self.bootstrap, self.log_tail())
        print(msg, file=sys.stderr)
        self.kill()
        raise BrokerError(msg)


# -- command line ---------------------------------------------------------

def _cli_start(d):
    os.makedirs(d, exist_ok=True)
    pid_path = os.path.join(d, "broker.pid")
    if os.path.exists(pid_path):
        print("a broker seems to run already in %s (pid file present)" % d,
              file=sys.stderr)
        return 1
    b = KafkaBroker(workdir=d)
    try:
        b.start()
    except BrokerError:
        return 1
    with open(os.path.join(d, "bootstrap"), "w") as f:
        f.write(b.bootstrap + "\n")
    # Detach: the broker runs in its own session and outlives us.
    b.proc = None
    print(b.bootstrap)
    return 0


def _cli_stop(d):
    pid_path = os.path.join(d, "broker.pid")
    try:
        pid = int(open(pid_path).read().strip())
    except (OSError, ValueError):
        print("no broker pid file in %s" % d, file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        os.unlink(pid_path)
        return 0
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.unlink(pid_path)
    except OSError:
        pass
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: %s start|stop DIR" % argv[0], file=sys.stderr)
        return 2
    return _cli_start(argv[2]) if argv[1] == "start" else _cli_stop(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
