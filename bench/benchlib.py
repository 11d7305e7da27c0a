"""Helpers the benchmark drivers share: the broker, loopback ports, a
process's CPU and memory from /proc, and the CPU-per-record table."""

import os
import socket
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "test", "kafka"))
from broker import KAFKA_SCRIPT_JVM_OPTS, KafkaBroker  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def bench_broker(extra_props=None):
    """The benchmarks' broker: run with the JVM settings of Kafka's own start
    scripts rather than the test suite's small heap."""
    return KafkaBroker(extra_props=extra_props,
                       jvm_opts=KAFKA_SCRIPT_JVM_OPTS)


def wait_ready(proc, port):
    """Wait until the proxy @proc on @port answers /ready (its session state
    replayed: an upgrade before that is a 503), or /healthcheck's 404 says the
    build has no /ready; raise when it exits or 30 s pass."""
    for _ in range(300):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/ready" % port,
                                   timeout=1)
            return
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("proxy not ready in 30 s (exit %s)" % proc.poll())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a whole process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def status_kb(pid, key):
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM), 0 when absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def print_cpu_table(direct, proxy, rows):
    """Where the machine's CPU went, s per million records: @direct and
    @proxy are the column labels of each side's processes followed by the
    label of its total; @rows holds (size, sockets, direct parts, proxy
    parts), the proxy's parts being the proxy, the load generator and the
    broker. On 2 cores the side with the larger total gets fewer records
    per second: `direct total / proxy total` is the ratio the totals
    predict, and `direct total / (direct total + load generator)` the ratio
    a proxy would reach whose own CPU per record were the direct client's
    (its WebSocket side free): the load generator takes its share of the
    same cores."""
    print("\n| size | sockets | %s | predicted ratio | bound |" %
          " | ".join(direct + proxy))
    print("|---|---|" + "---|" * (len(direct) + len(proxy) + 2))
    for size, sockets, d, p in rows:
        cells = list(d) + [sum(d)] + list(p) + [sum(p)]
        cells += [sum(d) / sum(p), sum(d) / (sum(d) + p[1])]
        print("| %d B | %d | %s |" % (size, sockets, " | ".join(
            "%.2f" % x for x in cells)))
