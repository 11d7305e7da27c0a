#!/usr/bin/env python3
"""Consumer benchmark: through the proxy (/socket/out) vs direct librdkafka
consumers with the same settings, in the same run, against the same real
Kafka broker (test/kafka/broker.py). Two proxy configurations, one after the
other: the shipped consumer defaults, then the prefetch limits raised so that
librdkafka's fetch backoff does not cap throughput (see bench/README.md).
Prints markdown tables and writes build/bench/consume_results.json.
KWP_BENCH_SCALE scales record counts and latency run lengths."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "kafka"))
from broker import KafkaBroker  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOOL = os.path.join(ROOT, "build", "bench", "consume_bench")
PROXY = os.path.join(ROOT, os.environ.get("KWP_BIN", "build/kafka-ws-proxy"))
OUT = os.path.join(ROOT, "build", "bench")
SCALE = float(os.environ.get("KWP_BENCH_SCALE", "1"))
HZ = os.sysconf("SC_CLK_TCK")

# The prefetch limits core/consume.c gives every socket's consumer unless
# consumer.kafka-client-properties set them, and the raised ones. The direct
# consumers get the same values with --set.
SHIPPED = {"queued.max.messages.kbytes": "1024", "queued.min.messages": "1000",
           "fetch.max.bytes": "1048576"}
RAISED = {"queued.max.messages.kbytes": "262144",
          "queued.min.messages": "1000000", "fetch.max.bytes": "52428800"}
# Pre-filled topics, 16 partitions each: (value bytes, records).
FILL = ((100, 2000000), (1000, 1000000))
SOCKETS = (1, 16)
RATE, LAT_SECONDS, LAT_SIZE, BURST_MS = 5000, 10.0, 100, 300
IDLE = 16
BATCH = 100
CAPPED_SECONDS = 4.0

problems = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


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
    def __init__(self, bootstrap, props, log):
        self.port = free_port()
        args = [PROXY]
        if props:  # replaces consumer.kafka-client-properties
            path = os.path.join(OUT, "consume_proxy.conf")
            with open(path, "w") as f:
                f.write("kafka.ws.proxy.consumer.kafka-client-properties {\n")
                for k, v in props.items():
                    f.write("  %s = %s\n" % (k, v))
                f.write("}\n")
            args += ["--config", path]
        env = dict(os.environ, WSPROXY_PORT=str(self.port),
                   WSPROXY_BIND_INTERFACE="127.0.0.1",
                   WSPROXY_KAFKA_BOOTSTRAP_HOSTS=bootstrap,
                   WSPROXY_WS_KEEP_ALIVE_INTERVAL="0")
        log.write("=== %s consumer.kafka-client-properties=%s\n" % (
            time.strftime("%H:%M:%S"), json.dumps(props or "shipped")))
        log.flush()
        self.proc = subprocess.Popen(args, env=env, stderr=log, stdout=log)
        self.pid = self.proc.pid
        # /ready (session state replayed) where the build has it, else
        # /healthcheck
        for _ in range(300):
            try:
                urllib.request.urlopen(
                    "http://127.0.0.1:%d/ready" % self.port, timeout=1)
                return
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("proxy not ready in 30 s (exit %s)" %
                           self.proc.poll())

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


def throughput(b, proxy, props, tpc, size, conns, seconds=None, batch=0):
    """Direct, then through the proxy, on the same topic (fresh groups)."""
    what = "%d B x %d socket(s)%s" % (size, conns,
                                      " batchSize=%d" % batch if batch else "")
    extra = ["--seconds", str(seconds)] if seconds else []
    base = ["--bootstrap", b.bootstrap, "--topic", tpc, "--size", str(size),
            "--connections", str(conns)] + extra
    d = run_tool("direct " + what, ["--mode", "direct"] + base + sets(props))
    c0 = cpu_seconds(proxy.pid)
    p = run_tool("proxy " + what, ["--mode", "ws", "--port", str(proxy.port),
                                   "--batch", str(batch)] + base)
    cpu = cpu_seconds(proxy.pid) - c0
    proxy.alive("proxy " + what)
    r = {"size": size, "connections": conns, "batch": batch, "direct": d,
         "proxy": p}
    if d and p and d["msgs_per_sec"] and p["received"]:
        r["ratio"] = p["msgs_per_sec"] / d["msgs_per_sec"]
        r["proxy_cpu_s_per_M"] = cpu / p["received"] * 1e6
        r["direct_cpu_s_per_M"] = d["client_cpu_s"] / d["received"] * 1e6
    return r


def latency(b, admin, proxy, props, burst):
    tpc = topic(admin, 1)
    what = "latency%s" % (" with a %d ms burst" % burst if burst else "")
    r = run_tool(what, ["--mode", "latency", "--bootstrap", b.bootstrap,
                        "--port", str(proxy.port), "--topic", tpc, "--rate",
                        str(RATE), "--seconds", str(LAT_SECONDS * SCALE),
                        "--size", str(LAT_SIZE), "--burst-ms", str(burst)]
                 + sets(props))
    proxy.alive(what)
    if r:
        r["added_us"] = {k: r["proxy"][k] - r["direct"][k] for k in
                         ("p50_us", "p99_us", "p999_us",
                          "last_quarter_p50_us", "last_quarter_p99_us")}
    return r


def idle(admin, proxy):
    """RSS and threads per idle consumer socket (joined, nothing to read)."""
    tpc = topic(admin, 16)
    pid = proxy.pid
    rss0, thr0 = status(pid, "VmRSS"), status(pid, "Threads")
    p = subprocess.Popen([TOOL, "--mode", "idle", "--port", str(proxy.port),
                          "--topic", tpc, "--connections", str(IDLE),
                          "--hold", "5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = json.loads(p.stdout.readline() or "{}")
    time.sleep(3)  # the consumers join the group and settle
    rss1, thr1 = status(pid, "VmRSS"), status(pid, "Threads")
    out, err = p.communicate(timeout=60)
    time.sleep(1)
    if p.returncode != 0 or first.get("idle_connections") != IDLE:
        problems.append("idle sockets: consume_bench exited %d: %s" % (
            p.returncode, err.strip()[-1000:]))
    proxy.alive("idle sockets")
    return {"sockets": IDLE, "rss_before_kb": rss0, "rss_open_kb": rss1,
            "rss_after_close_kb": status(pid, "VmRSS"),
            "threads_before": thr0, "threads_open": thr1,
            "threads_after_close": status(pid, "Threads"),
            "bytes_per_socket": (rss1 - rss0) * 1024 // IDLE,
            "threads_per_socket": (thr1 - thr0) / IDLE}


def fmt_tp(r):
    d, p = r["direct"] or {}, r["proxy"] or {}
    opt = lambda k: "%.2f" % r[k] if k in r else "-"  # noqa: E731
    return "| %d B | %d%s | %.0f | %.1f | %.0f | %.1f | %s | %s | %s | " \
        "%.2f / %.2f |" % (
            r["size"], r["connections"],
            " (batchSize=%d)" % r["batch"] if r.get("batch") else "",
            d.get("msgs_per_sec", 0), d.get("mb_per_sec", 0),
            p.get("msgs_per_sec", 0), p.get("mb_per_sec", 0), opt("ratio"),
            opt("proxy_cpu_s_per_M"), opt("direct_cpu_s_per_M"),
            d.get("seconds_from_connect", 0),
            p.get("seconds_from_connect", 0))


TP_HEAD = ("| size | sockets | direct msg/s | direct MB/s | proxy msg/s | "
           "proxy MB/s | ratio | proxy CPU s / 1M | direct CPU s / 1M | "
           "s from connect (direct / proxy) |\n|---|---|---|---|---|---|---|"
           "---|---|---|")


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
    os.makedirs(OUT, exist_ok=True)
    b = KafkaBroker()
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    log = open(os.path.join(OUT, "consume_proxy.log"), "w")
    results = {"machine": {"nproc": os.cpu_count(),
                           "note": "broker (JVM), proxy and load generator "
                                   "share the machine's cores"},
               "proxy_bin": PROXY, "scale": SCALE,
               "settings": {"shipped": SHIPPED, "raised": RAISED},
               "fill": [], "shipped": {}, "raised": {}}
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
        # 1. The proxy as shipped: memory per idle socket, latency, and what
        # the prefetch limits leave of throughput.
        proxy = Proxy(b.bootstrap, None, log)
        sh = results["shipped"]
        sh["idle"] = idle(admin, proxy)
        sh["latency"] = latency(b, admin, proxy, SHIPPED, 0)
        sh["latency_burst"] = latency(b, admin, proxy, SHIPPED, BURST_MS)
        sh["throughput"] = [throughput(b, proxy, SHIPPED, topics[size], size,
                                       1, CAPPED_SECONDS)
                            for size, _ in FILL]
        sh["proxy_rss_kb"] = status(proxy.pid, "VmRSS")
        sh["proxy_peak_rss_kb"] = status(proxy.pid, "VmHWM")
        sh["proxy_exit"] = proxy.stop()
        proxy = None
        # 2. Prefetch limits raised on both sides: what the proxy costs.
        proxy = Proxy(b.bootstrap, RAISED, log)
        ra = results["raised"]
        ra["throughput"] = [throughput(b, proxy, RAISED, topics[size], size,
                                       conns)
                            for size, _ in FILL for conns in SOCKETS]
        # one JSON array per frame instead of a frame per record
        ra["throughput"].append(throughput(b, proxy, RAISED, topics[100], 100,
                                           1, batch=BATCH))
        ra["latency"] = latency(b, admin, proxy, RAISED, 0)
        ra["latency_burst"] = latency(b, admin, proxy, RAISED, BURST_MS)
        ra["proxy_rss_kb"] = status(proxy.pid, "VmRSS")
        ra["proxy_peak_rss_kb"] = status(proxy.pid, "VmHWM")
        ra["proxy_exit"] = proxy.stop()
        proxy = None
    finally:
        if proxy:
            proxy.stop()
        del admin  # before the broker goes: no reconnect noise
        b.cleanup()
        log.close()
    results["seconds"] = time.monotonic() - t_start
    for k in ("shipped", "raised"):
        if results[k].get("proxy_exit") != 0:
            problems.append("%s: proxy exit status %s after SIGTERM" % (
                k, results[k].get("proxy_exit")))

    lib = [f["librdkafka"] for f in results["fill"] if f]
    print("\nproxy %s, librdkafka %s, %d cores" % (
        PROXY, lib[0] if lib else "?", os.cpu_count()))
    print("\n## Throughput, prefetch limits raised on both sides (%s)" %
          ", ".join("%s=%s" % kv for kv in RAISED.items()))
    print("records: " + ", ".join(
        "%d x %d B" % (f["acked"], f["size"]) for f in results["fill"] if f)
          + " (16 partitions); msg/s from the first record to the last\n")
    print(TP_HEAD)
    for r in results["raised"].get("throughput", []):
        print(fmt_tp(r))
    print("\n## Throughput, shipped defaults (%s), first %.0f s of each "
          "run\n" % (", ".join("%s=%s" % kv for kv in SHIPPED.items()),
                     CAPPED_SECONDS))
    print(TP_HEAD)
    for r in results["shipped"].get("throughput", []):
        print(fmt_tp(r))
    print("\n## End-to-end latency, open loop %d msg/s x %.0f s, %d B" % (
        RATE, LAT_SECONDS * SCALE, LAT_SIZE))
    for k, name in (("shipped", "shipped defaults"),
                    ("raised", "raised prefetch")):
        print_latency(name, results[k].get("latency"))
        print_latency("%s, producer stalls %d ms half-way" % (name, BURST_MS),
                      results[k].get("latency_burst"))
    i = results["shipped"].get("idle")
    if i:
        print("\n## Memory (shipped defaults)\n")
        print("%d idle consumer sockets: RSS %d -> %d KiB = %.0f KiB per "
              "socket, %.1f threads per socket (%d -> %d); after close %d "
              "KiB, %d threads" % (
                  i["sockets"], i["rss_before_kb"], i["rss_open_kb"],
                  i["bytes_per_socket"] / 1024, i["threads_per_socket"],
                  i["threads_before"], i["threads_open"],
                  i["rss_after_close_kb"], i["threads_after_close"]))
    for k in ("shipped", "raised"):
        r = results[k]
        if "proxy_rss_kb" in r:
            print("proxy (%s) at the end: RSS %d KiB, peak %d KiB, exit %s" % (
                k, r["proxy_rss_kb"], r["proxy_peak_rss_kb"],
                r.get("proxy_exit")))
    print("\ntotal %.0f s" % results["seconds"])
    results["problems"] = problems
    with open(os.path.join(OUT, "consume_results.json"), "w") as f:
        json.dump(results, f, indent=2)
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


if __name__ == "__main__":
    sys.exit(main())
