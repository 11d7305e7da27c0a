#!/usr/bin/env python3
"""Producer benchmark: through the proxy (/socket/in) vs a direct librdkafka
producer with the same settings, in the same run, against the same real
Kafka broker (test/kafka/broker.py). Prints a markdown table and writes
build/bench/produce_results.json. KWP_BENCH_SCALE scales message counts."""

import bisect
import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "kafka"))
from broker import KafkaBroker  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from benchlib import (cpu_seconds, free_port, print_cpu_table,  # noqa: E402
                      status_kb)

TOOL = os.path.join(ROOT, "build", "bench", "produce_bench")
PROXY = os.path.join(ROOT, os.environ.get("KWP_BIN", "build/kafka-ws-proxy"))
SCALE = float(os.environ.get("KWP_BENCH_SCALE", "1"))
PAIRS = int(os.environ.get("KWP_BENCH_PAIRS", "5"))
WARM_RECORDS = 300000
LAT_RATE = 5000
LAT_ROUNDS = 5
LAT_KEYS = ("p50_us", "p99_us", "p999_us")


def topic(admin):
    name = "bench-" + uuid.uuid4().hex[:8]
    for f in admin.create_topics([NewTopic(name, 3, 1)]).values():
        f.result(timeout=30)
    return name


def drop(admin, name):
    """Delete a finished run's topic: the runs write GBs in all."""
    for f in admin.delete_topics([name]).values():
        try:
            f.result(timeout=30)
        except Exception:  # noqa: BLE001 (a leftover topic is harmless)
            pass


def start_tool(args):
    return subprocess.Popen([TOOL] + args, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_tool(proc, args):
    stdout, stderr = proc.communicate(timeout=600)
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("produce_bench %s failed (%d): %s" % (
            args, proc.returncode, stderr[-2000:]))
    return json.loads(lines[-1])


def run_tool(args):
    return finish_tool(start_tool(args), args)


def latency_round(admin, b, port, secs):
    """Direct and proxy at the same time, each at LAT_RATE to a topic of its
    own: both see the same broker and the same machine (its hiccups set both
    clients' tails, and one after the other they differed by milliseconds
    from one run to the next), so their difference is what the proxy adds."""
    common = ["--rate", str(LAT_RATE), "--seconds", secs, "--size", "100"]
    # The throughput cases leave GBs of the broker's writes dirty in the page
    # cache; the kernel's writeback of them in the middle of a round raised a
    # direct producer's p99 from 8 ms to 46 and 65 ms. Flushed first.
    os.sync()
    dumps = [os.path.join(ROOT, "build", "bench", "lat_%s.bin" % s)
             for s in ("direct", "proxy")]
    d_args = ["--mode", "direct", "--bootstrap", b.bootstrap, "--topic",
              topic(admin), "--dump", dumps[0]] + common
    p_args = ["--mode", "ws", "--port", str(port), "--topic",
              topic(admin), "--dump", dumps[1]] + common
    d, p = start_tool(d_args), start_tool(p_args)
    r = {"direct": finish_tool(d, d_args), "proxy": finish_tool(p, p_args)}
    r["added_us"] = {k: r["proxy"][k] - r["direct"][k] for k in LAT_KEYS}
    r["paired_us"] = paired(*(read_dump(f) for f in dumps))
    return r


def read_dump(path):
    """produce_bench --dump: (scheduled send ns, latency ns) per message."""
    with open(path, "rb") as f:
        raw = f.read()
    os.unlink(path)
    v = struct.unpack("=%dQ" % (len(raw) // 8), raw)
    return v[0::2], v[1::2]


def paired(direct, proxy):
    """Each proxy message's latency minus that of the direct message
    scheduled closest to it (both send on their own schedules, the same
    rate): percentiles of what the proxy added at that moment. A broker
    stall delays both by about the same and drops out, where p99(proxy) -
    p99(direct) compares the two tails, each set by whichever stalls fell in
    its run."""
    ds, dl = direct
    diffs = []
    for t, lat in zip(*proxy):
        i = bisect.bisect_left(ds, t)
        if i == len(ds) or (i and t - ds[i - 1] < ds[i] - t):
            i -= 1
        if abs(ds[i] - t) <= 1000000:  # within 1 ms: the rounds overlap
            diffs.append((lat - dl[i]) / 1000.0)
    diffs.sort()
    pct = {k: diffs[int(q * (len(diffs) - 1) + 0.5)] if diffs else None
           for k, q in zip(LAT_KEYS, (0.5, 0.99, 0.999))}
    pct["pairs"] = len(diffs)
    return pct


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else \
        (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def case(admin, b, proxy, port, size, n, conns):
    """PAIRS runs of each side, alternating which goes first, each on a
    fresh topic: one run of each is at the mercy of the broker's mood of the
    moment (its rate moves by tens of percent from one run to the next)."""
    runs = []
    for i in range(PAIRS):
        pair = {}
        for side in (("direct", "ws") if i % 2 == 0 else ("ws", "direct")):
            t = topic(admin)
            b0 = cpu_seconds(b.proc.pid)
            if side == "direct":
                pair["direct"] = run_tool([
                    "--mode", "direct", "--bootstrap", b.bootstrap, "--topic",
                    t, "--count", n, "--size", str(size)])
                pair["direct_broker_cpu_s"] = cpu_seconds(b.proc.pid) - b0
            else:
                c0 = cpu_seconds(proxy.pid)
                pair["proxy"] = run_tool([
                    "--mode", "ws", "--port", str(port), "--topic", t,
                    "--count", n, "--size", str(size), "--connections",
                    str(conns)])
                pair["proxy_cpu_s"] = cpu_seconds(proxy.pid) - c0
                pair["proxy_broker_cpu_s"] = cpu_seconds(b.proc.pid) - b0
            drop(admin, t)
        pair["ratio"] = pair["proxy"]["msgs_per_sec"] / \
            pair["direct"]["msgs_per_sec"]
        runs.append(pair)
    d = median([r["direct"]["msgs_per_sec"] for r in runs])
    p = median([r["proxy"]["msgs_per_sec"] for r in runs])
    return {"size": size, "connections": conns, "runs": runs,
            "direct_msgs_per_sec": d, "proxy_msgs_per_sec": p,
            "proxy_mb_per_sec": median(
                [r["proxy"]["mb_per_sec"] for r in runs]),
            "ratio": p / d,
            "pair_ratios": [r["ratio"] for r in runs],
            "proxy_cpu_s_per_M": median(
                [r["proxy_cpu_s"] / r["proxy"]["acked"] * 1e6 for r in runs]),
            "direct_cpu_s_per_M": median(
                [r["direct"]["client_cpu_s"] / r["direct"]["acked"] * 1e6
                 for r in runs]),
            "load_generator_cpu_s_per_M": median(
                [r["proxy"]["client_cpu_s"] / r["proxy"]["acked"] * 1e6
                 for r in runs]),
            "broker_cpu_s_per_M_direct": median(
                [r["direct_broker_cpu_s"] / r["direct"]["acked"] * 1e6
                 for r in runs]),
            "broker_cpu_s_per_M_proxy": median(
                [r["proxy_broker_cpu_s"] / r["proxy"]["acked"] * 1e6
                 for r in runs])}


def main():
    b = KafkaBroker()
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    port = free_port()
    env = dict(os.environ, WSPROXY_PORT=str(port),
               WSPROXY_BIND_INTERFACE="127.0.0.1",
               WSPROXY_KAFKA_BOOTSTRAP_HOSTS=b.bootstrap,
               WSPROXY_WS_KEEP_ALIVE_INTERVAL="0")
    log = open(os.path.join(ROOT, "build", "bench", "produce_proxy.log"), "w")
    proxy = subprocess.Popen([PROXY], env=env, stderr=log)
    results = {"machine": {"nproc": os.cpu_count(),
                           "note": "broker (JVM), proxy and load generator "
                                   "share the machine's cores"},
               "throughput": [], "latency": []}
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthcheck" % port,
                                       timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        # Warm-up, unmeasured: the proxy's shared producers (one per worker)
        # and the broker. A fresh broker JVM is markedly slower for its first
        # few hundred MB (JIT), which would fall on whichever side ran first.
        run_tool(["--mode", "ws", "--port", str(port), "--topic",
                  topic(admin), "--count", "2000", "--connections", "4"])
        for mode in ("direct", "ws"):
            warm = topic(admin)
            run_tool(["--mode", mode, "--bootstrap", b.bootstrap, "--port",
                      str(port), "--topic", warm, "--count",
                      str(int(WARM_RECORDS * SCALE)), "--size", "1000",
                      "--connections", "16"])
            drop(admin, warm)
        for size, count in ((100, 500000), (1000, 300000)):
            n = str(int(count * SCALE))
            for conns in (1, 16):
                results["throughput"].append(
                    case(admin, b, proxy, port, size, n, conns))
        secs = str(10 * SCALE)
        rounds = [latency_round(admin, b, port, secs)
                  for _ in range(LAT_ROUNDS)]
        results["latency"] = {
            "rate": LAT_RATE, "rounds": rounds,
            "added_us_median": {k: median([r["added_us"][k] for r in rounds])
                                for k in LAT_KEYS},
            "paired_us_median": {k: median([r["paired_us"][k] for r in rounds])
                                 for k in LAT_KEYS}}
        results["proxy_rss_kb"] = status_kb(proxy.pid, "VmRSS")
        results["proxy_peak_rss_kb"] = status_kb(proxy.pid, "VmHWM")
    finally:
        proxy.send_signal(signal.SIGTERM)
        results["proxy_exit"] = proxy.wait(timeout=30)
        b.cleanup()
    print("\nmedians of %d runs of each side per case, alternating which "
          "goes first; ratio = median proxy / median direct, then the ratio "
          "of each pair" % PAIRS)
    print("\n| size | sockets | direct msg/s | proxy msg/s | proxy MB/s | "
          "ratio | pair ratios | proxy CPU s / 1M msgs | direct client CPU s "
          "/ 1M msgs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["throughput"]:
        print("| %d B | %d | %.0f | %.0f | %.1f | %.2f | %s | %.2f | %.2f |" % (
            r["size"], r["connections"], r["direct_msgs_per_sec"],
            r["proxy_msgs_per_sec"], r["proxy_mb_per_sec"], r["ratio"],
            " ".join("%.2f" % x for x in r["pair_ratios"]),
            r["proxy_cpu_s_per_M"], r["direct_cpu_s_per_M"]))
    print("\nwhere the machine's CPU went, s / 1M msgs (medians; the broker's "
          "while each run lasted)")
    print_cpu_table(
        ["direct client", "broker, direct run", "direct total"],
        ["proxy", "load generator", "broker, proxy run", "proxy total"],
        [(r["size"], r["connections"],
          (r["direct_cpu_s_per_M"], r["broker_cpu_s_per_M_direct"]),
          (r["proxy_cpu_s_per_M"], r["load_generator_cpu_s_per_M"],
           r["broker_cpu_s_per_M_proxy"])) for r in results["throughput"]])
    lat = results["latency"]
    print("\nopen loop, 100 B, direct and proxy at %d msg/s each at the same "
          "time, %d rounds (us)\n" % (LAT_RATE, LAT_ROUNDS))
    print("| round | side | p50 | p99 | p99.9 |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(lat["rounds"], 1):
        for k in ("direct", "proxy", "added_us"):
            print("| %d | %s | %.0f | %.0f | %.0f |" % (
                i, "added" if k == "added_us" else k,
                *(r[k][m] for m in LAT_KEYS)))
    a = lat["added_us_median"]
    print("| median | added | %.0f | %.0f | %.0f |" % (
        *(a[m] for m in LAT_KEYS),))
    print("\npaired: each proxy message's latency minus the direct message's "
          "sent at the same moment (a shared broker stall cancels), "
          "percentiles of that difference (us)\n")
    print("| round | pairs | p50 | p99 | p99.9 |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(lat["rounds"], 1):
        q = r["paired_us"]
        print("| %d | %d | %.0f | %.0f | %.0f |" % (
            i, q["pairs"], *(q[m] for m in LAT_KEYS)))
    a = lat["paired_us_median"]
    print("| median | | %.0f | %.0f | %.0f |" % (*(a[m] for m in LAT_KEYS),))
    print("\nproxy RSS %d KiB (peak %d KiB), exit %s" % (
        results["proxy_rss_kb"], results["proxy_peak_rss_kb"],
        results["proxy_exit"]))
    with open(os.path.join(ROOT, "build", "bench", "produce_results.json"),
              "w") as f:
        json.dump(results, f, indent=2)
    return 0 if results["proxy_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
