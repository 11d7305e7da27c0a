#!/usr/bin/env python3
"""Consumer benchmark: through the proxy (/socket/out) vs direct librdkafka
consumers, in the same run, against the same real Kafka broker
(test/kafka/broker.py). The proxy runs with its shipped consumer defaults; the
direct consumers get the same prefetch limits with --set, and once more
librdkafka's own (see bench/README.md). Prints markdown tables and writes
build/bench/consume_results.json. KWP_BENCH_SCALE scales record counts and
latency run lengths; KWP_BENCH_PERF=1 adds a profiled 1 KB x 1 socket proxy
run (perf record -g) after the measured ones.

With KWP_BENCH_BASELINE=<an older proxy binary> it compares that proxy with
KWP_BIN's instead: both run side by side against one broker and read the
1 KB topic with one socket in KWP_BENCH_PAIRS alternating rounds each (proxy
CPU per record; nothing else); build/bench/consume_compare_results.json."""

import json
import os
import shutil
import re
import signal
import subprocess
import sys
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from benchlib import (BASELINE, bench_broker, binary_info,  # noqa: E402
                      compare_row, cpu_seconds, free_port, print_compare,
                      print_cpu_table, status_kb, wait_ready)

TOOL = os.path.join(ROOT, "build", "bench", "consume_bench")
PROXY = os.path.join(ROOT, os.environ.get("KWP_BIN", "build/kafka-ws-proxy"))
# The proxy runs from a private copy: a rebuild of PROXY during the run
# neither changes the binary half-way nor hides perf's symbols.
PROXY_RUN = os.path.join(ROOT, "build", "bench", "consume_proxy.bin")
BASELINE_RUN = os.path.join(ROOT, "build", "bench", "consume_baseline.bin")
OUT = os.path.join(ROOT, "build", "bench")
SCALE = float(os.environ.get("KWP_BENCH_SCALE", "1"))
PERF = os.environ.get("KWP_BENCH_PERF", "") not in ("", "0")
PAIRS = int(os.environ.get("KWP_BENCH_PAIRS", "5"))  # the compare mode's

# The prefetch limits core/consume/consume.c (small_buffers) gives every socket's
# consumer unless consumer.kafka-client-properties set them; the direct
# consumers get them with --set. On librdkafka >= 2.2 the proxy also sets
# fetch.queue.backoff.ms=10, and so do the direct consumers then.
SHIPPED = {"queued.max.messages.kbytes": "4096",
           "queued.min.messages": "10000",
           "max.partition.fetch.bytes": "262144",
           "fetch.max.bytes": "1048576"}
NEWER = {"fetch.queue.backoff.ms": "10"}
REBALANCE = {"group.initial.rebalance.delay.ms": "3000"}
# Pre-filled topics, 16 partitions each: (value bytes, records).
FILL = ((100, 2000000), (1000, 1000000))
SOCKETS = (1, 16)
RATE, LAT_SECONDS, LAT_SIZE, BURST_MS = 5000, 10.0, 100, 300
# The latency producer's linger: with 0 every record was a produce request of
# its own, and on a slower machine the broker (one core's worth of CPU at
# 5,000 requests/s) fell seconds behind for good; 1 ms batches them (both
# consumers read the same records, so it adds the same to both).
LAT_LINGER_MS = 1
WARMUP_SECONDS = 20.0
IDLE = 16
BATCH = 100
# A throughput run stops this long after its first record (the rate so far
# is reported, marked *): a throttled consumer must not eat the time budget.
CAP_SECONDS = 30.0

problems = []
odd = []  # duplicates, stray records, runs stopped by the cap


def topic(admin, partitions):
    name = "cbench-" + uuid.uuid4().hex[:8]
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(timeout=30)
    return name


def sets(props):
    return [a for k, v in props.items() for a in ("--set", "%s=%s" % (k, v))]


def run_tool(what, args, timeout=300):
    """The tool's last JSON line, or None (the failure goes to problems)."""
    try:
        out = subprocess.run([TOOL] + args, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        problems.append("%s: consume_bench timed out after %d s: %s" % (
            what, timeout, " ".join(args)))
        return None
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        problems.append("%s: consume_bench exited %d: %s\n  %s" % (
            what, out.returncode, " ".join([TOOL] + args),
            out.stderr.strip().replace("\n", "\n  ")[-2000:]))
    return json.loads(lines[-1]) if lines else None


class Proxy:
    def __init__(self, bootstrap, props, log, binary=PROXY_RUN):
        self.port = free_port()
        args = [binary]
        if props:  # replaces consumer.kafka-client-properties
            path = os.path.join(OUT, "consume_proxy.conf")
            with open(path, "w") as f:
                f.write("kafka.ws.proxy.consumer.kafka-client-properties {\n")
                for k, v in props.items():
                    f.write("  %s = %s\n" % (k, v))
                f.write("}\n")
            args += ["--config", path]
        # Each proxy its own server-id: proxies started side by side are
        # two nodes of one cluster (the session handler refuses a duplicate).
        env = dict(os.environ, WSPROXY_PORT=str(self.port),
                   WSPROXY_SERVER_ID="bench-%d" % self.port,
                   WSPROXY_BIND_INTERFACE="127.0.0.1",
                   WSPROXY_KAFKA_BOOTSTRAP_HOSTS=bootstrap,
                   WSPROXY_WS_KEEP_ALIVE_INTERVAL="0")
        log.write("=== %s consumer.kafka-client-properties=%s\n" % (
            time.strftime("%H:%M:%S"), json.dumps(props or "shipped")))
        log.flush()
        self.proc = subprocess.Popen(args, env=env, stderr=log, stdout=log)
        self.pid = self.proc.pid
        wait_ready(self.proc, self.port)

    def alive(self, what):
        if self.proc.poll() is not None:
            problems.append("%s: the proxy died (exit %s)" % (
                what, self.proc.returncode))
            return False
        return True

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            problems.append("proxy did not exit within 30 s of SIGTERM")
            self.proc.kill()
            return self.proc.wait()


def librdkafka_at_least(version, want):
    try:
        return tuple(int(x) for x in version.split(".")[:2]) >= want
    except ValueError:
        return False


def throughput(b, proxy, props, tpc, size, conns, batch=0, direct=True,
               tag="", avro=False):
    """Direct with the proxy's settings, direct with librdkafka's own
    (no --set), then through the proxy; the same topic, fresh groups.
    With @avro one more proxy run with socketPayload=avro (`avro`).
    @tag names the proxy in notes and problems (the compare mode's two)."""
    what = "%s%d B x %d socket(s)%s" % (
        tag, size, conns, " batchSize=%d" % batch if batch else "")
    base = ["--bootstrap", b.bootstrap, "--topic", tpc, "--size", str(size),
            "--connections", str(conns), "--seconds", str(CAP_SECONDS)]
    r = {"size": size, "connections": conns, "batch": batch}
    broker = {}

    def timed(key, label, args):
        b0 = cpu_seconds(b.proc.pid)
        r[key] = run_tool(label, args)
        broker[key] = cpu_seconds(b.proc.pid) - b0

    if direct:
        timed("direct", "direct " + what,
              ["--mode", "direct"] + base + sets(props))
        timed("direct_defaults", "direct (librdkafka defaults) " + what,
              ["--mode", "direct"] + base)
    c0 = cpu_seconds(proxy.pid)
    timed("proxy", "proxy " + what, ["--mode", "ws", "--port",
                                     str(proxy.port), "--batch", str(batch)]
          + base)
    p = r["proxy"]
    cpu = {"proxy": cpu_seconds(proxy.pid) - c0}
    proxy.alive("proxy " + what)
    if p and p["received"]:
        r["proxy_cpu_s_per_M"] = cpu["proxy"] / p["received"] * 1e6
    if avro:
        c0 = cpu_seconds(proxy.pid)
        timed("avro", "proxy socketPayload=avro " + what,
              ["--mode", "ws", "--port", str(proxy.port), "--payload",
               "avro"] + base)
        cpu["avro"] = cpu_seconds(proxy.pid) - c0
        proxy.alive("proxy socketPayload=avro " + what)
    for k in ("direct", "direct_defaults", "proxy", "avro"):
        x = r.get(k)
        if not x:
            continue
        if x["received"]:
            x["cpu_s_per_M"] = cpu.get(k, x["client_cpu_s"]) \
                / x["received"] * 1e6
            x["broker_cpu_s_per_M"] = broker[k] / x["received"] * 1e6
            if k in ("proxy", "avro"):
                x["load_generator_cpu_s_per_M"] = x["client_cpu_s"] / \
                    x["received"] * 1e6
        for n in ("duplicates", "stray"):
            if x.get(n):
                odd.append("%s %s: %d %s" % (k, what, x[n], n))
        if x.get("time_limited"):
            odd.append("%s %s: stopped after %.0f s, %d of %d records" % (
                k, what, CAP_SECONDS, x["received"], x["expected"]))
    return r


def latency(b, admin, proxy, props, burst, seconds=None):
    tpc = topic(admin, 1)
    what = "latency%s" % (" with a %d ms burst" % burst if burst else "")
    r = run_tool(what, ["--mode", "latency", "--bootstrap", b.bootstrap,
                        "--port", str(proxy.port), "--topic", tpc, "--rate",
                        str(RATE), "--seconds",
                        str(seconds or LAT_SECONDS * SCALE),
                        "--size", str(LAT_SIZE), "--burst-ms", str(burst),
                        "--linger-ms", str(LAT_LINGER_MS)]
                 + sets(props))
    proxy.alive(what)
    if r:
        r["added_us"] = {k: r["proxy"][k] - r["direct"][k] for k in
                         ("p50_us", "p99_us", "p999_us",
                          "last_quarter_p50_us", "last_quarter_p99_us")}
    return r


def hold_sockets(proxy, tpc, hold, what, watch, no_read=False):
    """IDLE consumer sockets of one group on @tpc, opened and held @hold s
    by consume_bench (never read with @no_read); @watch() runs while they
    are open (given the process), and what it returns is returned."""
    p = subprocess.Popen([TOOL, "--mode", "idle", "--port", str(proxy.port),
                          "--topic", tpc, "--connections", str(IDLE),
                          "--hold", str(hold)] +
                         (["--no-read"] if no_read else []),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    first = json.loads(p.stdout.readline() or "{}")
    seen = watch(p)
    out, err = p.communicate(timeout=60)
    if p.returncode != 0 or first.get("idle_connections") != IDLE:
        problems.append("%s: consume_bench exited %d: %s" % (
            what, p.returncode, err.strip()[-1000:]))
    proxy.alive(what)
    time.sleep(1)
    return seen


def idle(admin, proxy):
    """RSS and threads per idle consumer socket (joined, nothing to read)."""
    pid = proxy.pid
    rss0, thr0 = status_kb(pid, "VmRSS"), status_kb(pid, "Threads")

    def watch(_):
        time.sleep(3)  # the consumers join the group and settle
        return status_kb(pid, "VmRSS"), status_kb(pid, "Threads")

    rss1, thr1 = hold_sockets(proxy, topic(admin, 16), 5, "idle sockets",
                              watch)
    # Each socket's consumer leaves its group as the socket closes; sixteen
    # members leaving one group took 1 to 6 s in runs of 2026-12-07, and the
    # consumers' threads end only then: wait until the count holds for 2 s.
    since = time.monotonic()  # hold_sockets waits 1 s after the close
    closed, last = since - 1, status_kb(pid, "Threads")
    while time.monotonic() - since < 2 and since - closed < 60:
        time.sleep(0.2)
        now = status_kb(pid, "Threads")
        if now != last:
            last, since = now, time.monotonic()
    return {"sockets": IDLE, "rss_before_kb": rss0, "rss_open_kb": rss1,
            "rss_after_close_kb": status_kb(pid, "VmRSS"),
            "threads_before": thr0, "threads_open": thr1,
            "threads_after_close": last,
            "close_settled_s": since - closed,
            "bytes_per_socket": (rss1 - rss0) * 1024 // IDLE,
            "threads_per_socket": (thr1 - thr0) / IDLE}


def stalled(proxy, tpc, size, hold=8.0):
    """RSS per socket that never reads, on a filled topic: every buffer the
    proxy keeps for a socket (its consumer's prefetch queue, fetch buffers,
    unsent frames) is at its bound. Sampled every 0.25 s; the growth at the
    end of the hold and at its highest, over the RSS before."""
    pid = proxy.pid
    rss0 = status_kb(pid, "VmRSS")

    def watch(tool):
        samples, t_end = [], time.monotonic() + hold - 0.5
        while time.monotonic() < t_end and tool.poll() is None:
            samples.append(status_kb(pid, "VmRSS"))
            time.sleep(0.25)
        return samples

    samples = hold_sockets(proxy, tpc, hold, "stalled sockets (%d B)" % size,
                           watch, no_read=True) or [rss0]
    return {"sockets": IDLE, "size": size, "hold_s": hold,
            "rss_before_kb": rss0,
            "rss_end_kb": samples[-1], "rss_max_kb": max(samples),
            "rss_after_close_kb": status_kb(pid, "VmRSS"),
            "bytes_per_socket_end": (samples[-1] - rss0) * 1024 // IDLE,
            "bytes_per_socket_max": (max(samples) - rss0) * 1024 // IDLE}


def rate(x):
    if not x:
        return "failed"
    return "%.0f%s" % (x["msgs_per_sec"], "*" if x.get("time_limited") else "")


def ratio(p, d):
    if p and d and d["msgs_per_sec"]:
        return "%.2f" % (p["msgs_per_sec"] / d["msgs_per_sec"])
    return "-"


def val(x, key, f="%.2f"):
    return f % x[key] if x and key in x else "-"


def fmt_tp(r, ref):
    """ref: the row whose direct runs this one is compared with."""
    p, d, dd = r.get("proxy"), ref.get("direct"), ref.get("direct_defaults")
    own = ref is r
    return ("| %d B | %d%s | %s | %s | %s | %s | %s | %s | %s | %s / %s | "
            "%s / %s / %s | %s / %s / %s |") % (
        r["size"], r["connections"],
        " (batchSize=%d)" % r["batch"] if r.get("batch") else "",
        rate(p), val(p, "mb_per_sec", "%.1f"),
        rate(d) if own else "(%s)" % rate(d), ratio(p, d),
        rate(dd) if own else "(%s)" % rate(dd), ratio(p, dd),
        val(p, "cpu_s_per_M"),
        val(d, "cpu_s_per_M") if own else "-",
        val(dd, "cpu_s_per_M") if own else "-",
        val(p, "max_gap_ms", "%.0f"),
        val(d, "max_gap_ms", "%.0f") if own else "-",
        val(dd, "max_gap_ms", "%.0f") if own else "-",
        val(p, "seconds_from_connect", "%.1f"),
        val(d, "seconds_from_connect", "%.1f") if own else "-",
        val(dd, "seconds_from_connect", "%.1f") if own else "-")


TP_HEAD = ("| size | sockets | proxy msg/s | proxy MB/s | direct, same "
           "settings msg/s | proxy / direct | direct, librdkafka defaults "
           "msg/s | proxy / direct defaults | proxy CPU s / 1M | direct CPU "
           "s / 1M (same / defaults) | longest gap ms (proxy / same / "
           "defaults) | s from connect (proxy / same / defaults) |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|")


def print_cpu(rows):
    """Where the machine's CPU went per million records: on 2 cores the
    side that needs more of it in all processes together reads slower."""
    print("\nwhere the machine's CPU went, s / 1M records (each process over "
          "the whole run)")
    table = []
    for r in rows:
        d, p = r.get("direct_defaults") or {}, r.get("proxy") or {}
        if "broker_cpu_s_per_M" in d and "broker_cpu_s_per_M" in p:
            table.append((r["size"], r["connections"],
                          (d["cpu_s_per_M"], d["broker_cpu_s_per_M"]),
                          (p["cpu_s_per_M"], p["load_generator_cpu_s_per_M"],
                           p["broker_cpu_s_per_M"])))
    print_cpu_table(["direct (defaults) client", "broker", "total"],
                    ["proxy", "load generator", "broker", "total"], table)


def print_avro(rows):
    """socketPayload=avro beside JSON and the direct consumers."""
    rows = [r for r in rows if "avro" in r]
    if not rows:
        return
    print("\nsocketPayload=avro (binary AvroConsumerRecord frames) beside "
          "JSON (text frames), one run each after the direct ones; CPU s / "
          "1M records over the whole run\n")
    print("| size | sockets | proxy CPU JSON | proxy CPU Avro | Avro / JSON | "
          "direct CPU (same / defaults) | msg/s JSON | msg/s Avro | msg/s "
          "direct (same / defaults) | load gen. CPU JSON / Avro |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, a = r.get("proxy"), r.get("avro")
        d, dd = r.get("direct"), r.get("direct_defaults")
        rel = "-"
        if p and a and "cpu_s_per_M" in p and "cpu_s_per_M" in a:
            rel = "%.2f" % (a["cpu_s_per_M"] / p["cpu_s_per_M"])
        print("| %d B | %d | %s | %s | %s | %s / %s | %s | %s | %s / %s | "
              "%s / %s |" % (
                  r["size"], r["connections"], val(p, "cpu_s_per_M"),
                  val(a, "cpu_s_per_M"), rel, val(d, "cpu_s_per_M"),
                  val(dd, "cpu_s_per_M"), rate(p), rate(a), rate(d),
                  rate(dd), val(p, "load_generator_cpu_s_per_M"),
                  val(a, "load_generator_cpu_s_per_M")))


def profile(b, proxy, tpc):
    """perf record -g on the proxy during one more 1 KB x 1 socket run."""
    data = os.path.join(OUT, "consume_perf.data")
    try:
        perf = subprocess.Popen(["perf", "record", "-g", "-o", data, "-p",
                                 str(proxy.pid)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError as e:
        return {"error": str(e)}
    time.sleep(0.5)
    p = run_tool("proxy 1000 B x 1 socket(s), profiled", [
        "--mode", "ws", "--port", str(proxy.port), "--bootstrap", b.bootstrap,
        "--topic", tpc, "--size", "1000", "--connections", "1", "--seconds",
        str(CAP_SECONDS)])
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio",
                          "--no-children", "-g", "none", "--sort",
                          "dso,symbol"], capture_output=True, text=True)
    top = [re.sub(r"(\s+-)+$", "", l.strip()) for l in
           rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
    return {"run": p, "data": data, "top": top[:10],
            "samples": (re.findall(r"# Samples: (\S+)", rep.stdout) or
                        ["?"])[0]}


def print_latency(title, r):
    if not r:
        print("\n%s: failed" % title)
        return
    print("\n%s (us) | p50 | p99 | p99.9 | max | last 1/4 p50 | last 1/4 p99 |"
          % title)
    print("|---|---|---|---|---|---|---|")
    for k in ("direct", "proxy"):
        x = r[k]
        print("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |" % (
            k, x["p50_us"], x["p99_us"], x["p999_us"], x["max_us"],
            x["last_quarter_p50_us"], x["last_quarter_p99_us"]))
    a = r["added_us"]
    print("| proxy - direct | %.0f | %.0f | %.0f | | %.0f | %.0f |" % (
        a["p50_us"], a["p99_us"], a["p999_us"], a["last_quarter_p50_us"],
        a["last_quarter_p99_us"]))


def main():
    t_start = time.monotonic()
    load0 = os.getloadavg()
    os.makedirs(OUT, exist_ok=True)
    shutil.copy2(PROXY, PROXY_RUN)
    # Kafka's default initial rebalance delay (the test broker's is 0, for
    # fast tests): 16 members joining a new group then form it in one
    # rebalance instead of a storm of them, each stopping every member's
    # fetching for up to a heartbeat; that storm, not the consumers, decided
    # the 16-socket rates.
    b = bench_broker(REBALANCE)
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    log = open(os.path.join(OUT, "consume_proxy.log"), "w")
    results = {"machine": {"nproc": os.cpu_count(),
                           "note": "broker (JVM), proxy and load generator "
                                   "share the machine's cores"},
               "proxy_bin": binary_info(PROXY), "scale": SCALE, "fill": [],
               "throughput": []}
    proxy = None
    topics = {}
    try:
        for size, count in FILL:
            topics[size] = topic(admin, 16)
            f = run_tool("fill %d B" % size, [
                "--mode", "fill", "--bootstrap", b.bootstrap, "--topic",
                topics[size], "--count", str(int(count * SCALE)), "--size",
                str(size)])
            results["fill"].append(f)
        lib = next((f["librdkafka"] for f in results["fill"] if f), "?")
        props = dict(SHIPPED)
        if librdkafka_at_least(lib, (2, 2)):
            props.update(NEWER)
        results["librdkafka"] = lib
        results["settings"] = props
        # The proxy as shipped (no configuration file). Memory first, on the
        # fresh proxy; then latency; then throughput.
        proxy = Proxy(b.bootstrap, None, log)
        results["idle"] = idle(admin, proxy)
        # A fresh broker JVM falls seconds behind 5,000 single-record
        # produce requests a second until it has warmed up (both consumers
        # then see p99 of several seconds): one unmeasured run first.
        results["latency_warmup"] = latency(b, admin, proxy, props, 0,
                                            WARMUP_SECONDS * SCALE)
        results["latency"] = latency(b, admin, proxy, props, 0)
        results["latency_burst"] = latency(b, admin, proxy, props, BURST_MS)
        tp = results["throughput"]
        for size, _ in FILL:
            for conns in SOCKETS:
                # socketPayload=avro beside JSON: 1 KB x 1 socket only
                # (the run's time budget).
                tp.append(throughput(b, proxy, props, topics[size], size,
                                     conns, avro=size == 1000 and conns == 1))
        # One JSON array per frame instead of a frame per record; compared
        # with the direct runs of 100 B x 1 socket.
        tp.append(throughput(b, proxy, props, topics[100], 100, 1,
                             batch=BATCH, direct=False))
        if PERF:
            results["perf"] = profile(b, proxy, topics[1000])
        # The worst case per socket, each on a fresh proxy of its own (memory
        # one run frees would hide the next run's growth).
        results["stalled"] = []
        for size, _ in FILL:
            sp = Proxy(b.bootstrap, None, log)
            try:
                results["stalled"].append(stalled(sp, topics[size], size))
            finally:
                if sp.stop() != 0:
                    problems.append("stalled-socket proxy: exit status %s"
                                    % sp.proc.returncode)
        results["proxy_rss_kb"] = status_kb(proxy.pid, "VmRSS")
        results["proxy_peak_rss_kb"] = status_kb(proxy.pid, "VmHWM")
        results["proxy_exit"] = proxy.stop()
        proxy = None
    finally:
        if proxy:
            proxy.stop()
        del admin  # before the broker goes: no reconnect noise
        b.cleanup()
        log.close()
    results["seconds"] = time.monotonic() - t_start
    results["loadavg"] = {"start": load0, "end": os.getloadavg()}
    if results.get("proxy_exit") != 0:
        problems.append("proxy exit status %s after SIGTERM" %
                        results.get("proxy_exit"))

    pb = results["proxy_bin"]
    print("\nproxy %s (built %s, sha256 %s; repository at %s), librdkafka %s, "
          "%d cores, load average %.2f at the start, %.2f at the end" % (
              pb["path"], pb["mtime"], pb["sha256"], pb["repo"],
              results.get("librdkafka", "?"), os.cpu_count(), load0[0],
              results["loadavg"]["end"][0]))
    settings = ", ".join("%s=%s" % kv for kv in results.get(
        "settings", SHIPPED).items())
    print("\n## Throughput, the proxy's shipped defaults (%s)" % settings)
    print("records: " + ", ".join(
        "%d x %d B" % (f["acked"], f["size"]) for f in results["fill"] if f)
          + " (16 partitions); msg/s from the first record to the last; "
          "direct, same settings: the same limits with --set; direct, "
          "librdkafka defaults: no --set; * = stopped %.0f s after the first "
          "record; (x) = the 100 B x 1 socket row's\n" % CAP_SECONDS)
    print(TP_HEAD)
    rows = results["throughput"]
    for r in rows:
        ref = r if "direct" in r else next(
            (x for x in rows if x["size"] == r["size"] and
             x["connections"] == r["connections"] and "direct" in x), r)
        print(fmt_tp(r, ref))
    print_cpu(rows)
    print_avro(rows)
    print("\n## End-to-end latency, open loop %d msg/s x %.0f s, %d B, "
          "shipped defaults on both sides" % (RATE, LAT_SECONDS * SCALE,
                                              LAT_SIZE))
    w = results.get("latency_warmup")
    if w:
        print("\n(unmeasured broker warm-up run before these, %.0f s: p99 "
              "direct %.0f us, proxy %.0f us)" % (
                  WARMUP_SECONDS * SCALE, w["direct"]["p99_us"],
                  w["proxy"]["p99_us"]))
    print_latency("steady", results.get("latency"))
    print_latency("producer stalls %d ms half-way" % BURST_MS,
                  results.get("latency_burst"))
    i = results.get("idle")
    if i:
        print("\n## Memory (shipped defaults)\n")
        print("%d idle consumer sockets: RSS %d -> %d KiB = %.0f KiB per "
              "socket, %.1f threads per socket (%d -> %d); after close %d "
              "KiB, %d threads (the last consumer thread gone %.1f s after "
              "the sockets closed; 1.0: by the first look)" % (
                  i["sockets"], i["rss_before_kb"], i["rss_open_kb"],
                  i["bytes_per_socket"] / 1024, i["threads_per_socket"],
                  i["threads_before"], i["threads_open"],
                  i["rss_after_close_kb"], i["threads_after_close"],
                  i["close_settled_s"]))
    for st in results.get("stalled") or []:
        print("%d sockets that never read, %d B records (a fresh proxy each): "
              "RSS %d -> %d KiB at the end of %.0f s (highest %d KiB) = %.1f "
              "MiB per socket; after close %d KiB" % (
                  st["sockets"], st["size"], st["rss_before_kb"],
                  st["rss_end_kb"], st["hold_s"], st["rss_max_kb"],
                  st["bytes_per_socket_end"] / 1048576.0,
                  st["rss_after_close_kb"]))
    if "proxy_rss_kb" in results:
        print("proxy at the end: RSS %d KiB, peak %d KiB, exit %s" % (
            results["proxy_rss_kb"], results["proxy_peak_rss_kb"],
            results.get("proxy_exit")))
    pf = results.get("perf")
    if pf:
        print("\n## perf record -g, proxy, 1 KB x 1 socket (%s msg/s while "
              "profiled, %s samples), top symbols (self)\n" % (
                  rate(pf.get("run")), pf.get("samples", "?")))
        for line in pf.get("top") or [pf.get("error", "no samples")]:
            print("    " + line)
    print("\ntotal %.0f s" % results["seconds"])
    results["problems"] = problems
    results["odd"] = odd
    with open(os.path.join(OUT, "consume_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    if odd:
        print("\nNOTES:")
        for n in odd:
            print("- " + n)
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("- " + p)
        try:
            with open(os.path.join(OUT, "consume_proxy.log")) as f:
                print("\nproxy log tail:\n" + "".join(f.readlines()[-30:]))
        except OSError:
            pass
    return 1 if problems else 0


def compare_rounds(b, proxies, tpc, size):
    """PAIRS rounds of each proxy reading all of @tpc with one socket, the
    old and the new alternating which goes first (old new, new old, ...)."""
    runs = {"old": [], "new": []}
    for i in range(PAIRS):
        for side in ("old", "new") if i % 2 == 0 else ("new", "old"):
            r = throughput(b, proxies[side], None, tpc, size, 1,
                           direct=False, tag="%s proxy, round %d: " % (
                               side, i + 1))
            r["round"] = i
            runs[side].append(r)

    def rates(side):
        return [r["proxy"]["msgs_per_sec"] if r.get("proxy") else None
                for r in runs[side]]

    row = compare_row("consume %d B x 1" % size,
                      [r.get("proxy_cpu_s_per_M") for r in runs["old"]],
                      [r.get("proxy_cpu_s_per_M") for r in runs["new"]],
                      rates("old"), rates("new"))
    row.update(size=size, connections=1, runs=runs)
    return row


def compare_main():
    """The compare mode: the proxy CPU per million records of BASELINE (old)
    and PROXY (new), both running against one broker, reading the 1 KB
    topic with one socket."""
    t_start = time.monotonic()
    load0 = os.getloadavg()
    old_bin = os.path.abspath(BASELINE)
    for path in (old_bin, PROXY):
        if not os.access(path, os.X_OK):
            print("consume_run: no proxy binary at %s" % path, file=sys.stderr)
            return 2
    os.makedirs(OUT, exist_ok=True)
    shutil.copy2(old_bin, BASELINE_RUN)
    shutil.copy2(PROXY, PROXY_RUN)
    size, count = FILL[1]
    results = {"machine": {"nproc": os.cpu_count()}, "pairs": PAIRS,
               "scale": SCALE, "old": binary_info(old_bin),
               "new": binary_info(PROXY), "cases": []}
    b = bench_broker(REBALANCE)
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    logs = {side: open(os.path.join(OUT, "consume_%s_proxy.log" % side), "w")
            for side in ("old", "new")}
    proxies = {}
    try:
        tpc = topic(admin, 16)
        results["fill"] = run_tool("fill %d B" % size, [
            "--mode", "fill", "--bootstrap", b.bootstrap, "--topic", tpc,
            "--count", str(int(count * SCALE)), "--size", str(size)])
        if results["fill"]:
            proxies["old"] = Proxy(b.bootstrap, None, logs["old"],
                                   BASELINE_RUN)
            proxies["new"] = Proxy(b.bootstrap, None, logs["new"])
            # Unmeasured, one read each: the broker's JVM compiles its fetch
            # path, each proxy its first consumer.
            results["warmup"] = [
                throughput(b, proxies[side], None, tpc, size, 1,
                           direct=False, tag="%s proxy, warm-up: " % side)
                for side in ("old", "new")]
            results["cases"].append(compare_rounds(b, proxies, tpc, size))
        results["exit"] = {}
        for side in list(proxies):
            results["exit"][side] = proxies.pop(side).stop()
            if results["exit"][side] != 0:
                problems.append("%s proxy: exit status %s after SIGTERM" % (
                    side, results["exit"][side]))
    finally:
        for proxy in proxies.values():
            proxy.stop()
        del admin
        b.cleanup()
        for log in logs.values():
            log.close()
    results["seconds"] = time.monotonic() - t_start
    results["loadavg"] = {"start": load0, "end": os.getloadavg()}
    fill = results.get("fill") or {}
    print_compare(
        "consume, old and new proxy side by side, %d rounds of each (old "
        "first in odd rounds, new first in even ones), %s x %d B on 16 "
        "partitions read by one socket per run (connecting, joining the "
        "group and closing included), %d cores, load average %.2f at the "
        "start, %.2f at the end" % (
            PAIRS, fill.get("acked", "?"), size, os.cpu_count(), load0[0],
            results["loadavg"]["end"][0]),
        results["old"], results["new"], results["cases"])
    print("\ntotal %.0f s" % results["seconds"])
    results["problems"] = problems
    results["odd"] = odd
    with open(os.path.join(OUT, "consume_compare_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    if odd:
        print("\nNOTES:")
        for n in odd:
            print("- " + n)
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print("- " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(compare_main() if BASELINE else main())
