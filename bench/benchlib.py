"""Helpers the benchmark drivers share: the broker, loopback ports, a
process's CPU and memory from /proc, the CPU-per-record table, and the
old-against-new table of the compare mode (KWP_BENCH_BASELINE)."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "test", "kafka"))
from broker import KAFKA_SCRIPT_JVM_OPTS, KafkaBroker  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
# The compare mode: the proxy CPU per record of this binary (an older
# commit's build) against KWP_BIN's, measured in alternating rounds.
BASELINE = os.environ.get("KWP_BENCH_BASELINE") or None
# new / old within this of 1 is "within 5 %"; below it "better".
TOLERANCE = 0.05


def bench_broker(extra_props=None):
    """The benchmarks' broker: run with the JVM settings of Kafka's own start
    scripts rather than the test suite's small heap. SIGTERM becomes
    SystemExit from here on, so the drivers' `finally` stops the broker: it
    runs in a session of its own, and a make killed with its process group
    (SIGTERM) left the 1 GB JVM running."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
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


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else \
        (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def binary_info(path):
    """Which binary: its path, mtime and hash, and `git describe --dirty`
    of the tree it sits in (a build directory inside a worktree names the
    worktree's commit)."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    head = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(
        path)), "describe", "--always", "--dirty"], capture_output=True,
        text=True)
    return {"path": path, "sha256": digest,
            "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
                os.path.getmtime(path))),
            "repo": head.stdout.strip() or "?"}


def compare_row(case, old, new, old_rate, new_rate):
    """One case of the compare mode: @old and @new are the rounds' proxy
    CPU s per million records, @old_rate and @new_rate their records per
    second, in the order they ran (a failed round is None and left out).
    The verdict compares the CPU medians."""
    o = [x for x in old if x is not None]
    n = [x for x in new if x is not None]
    row = {"case": case, "old_cpu_s_per_M": old, "new_cpu_s_per_M": new,
           "old_msgs_per_sec": old_rate, "new_msgs_per_sec": new_rate}
    if not o or not n:
        row.update(verdict="no figures")
        return row
    row.update(old_median=median(o), new_median=median(n),
               old_msgs_per_sec_median=median(
                   [x for x in old_rate if x is not None]),
               new_msgs_per_sec_median=median(
                   [x for x in new_rate if x is not None]))
    row["ratio"] = row["new_median"] / row["old_median"]
    row["verdict"] = ("better" if row["ratio"] < 1 - TOLERANCE else
                      "worse" if row["ratio"] > 1 + TOLERANCE else
                      "within %.0f %%" % (TOLERANCE * 100))
    return row


def print_compare(title, old, new, rows):
    """The compare mode's table: @old and @new are binary_info() dicts,
    @rows compare_row() dicts."""
    print("\n%s\n" % title)
    for label, info in (("old", old), ("new", new)):
        print("%s: %s (built %s, sha256 %s; tree at %s)" % (
            label, info["path"], info["mtime"], info["sha256"],
            info["repo"]))
    print("\n| case | old: proxy CPU s / 1M, median | old: each round | new: "
          "median | new: each round | new / old | verdict | msg/s, medians "
          "(old / new) |")
    print("|---|---|---|---|---|---|---|---|")

    def each(xs):
        return " ".join("-" if x is None else "%.2f" % x for x in xs)

    for r in rows:
        if "ratio" not in r:
            print("| %s | - | %s | - | %s | - | %s | - |" % (
                r["case"], each(r["old_cpu_s_per_M"]),
                each(r["new_cpu_s_per_M"]), r["verdict"]))
            continue
        print("| %s | %.2f | %s | %.2f | %s | %.3f | %s | %.0f / %.0f |" % (
            r["case"], r["old_median"], each(r["old_cpu_s_per_M"]),
            r["new_median"], each(r["new_cpu_s_per_M"]), r["ratio"],
            r["verdict"], r["old_msgs_per_sec_median"],
            r["new_msgs_per_sec_median"]))
