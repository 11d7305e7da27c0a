#!/usr/bin/env python3
"""Producer benchmark: through the proxy (/socket/in) vs a direct librdkafka
producer with the same settings, in the same run, against the same real
Kafka broker (test/kafka/broker.py). Prints a markdown table and writes
build/bench/produce_results.json. KWP_BENCH_SCALE scales message counts.

With KWP_BENCH_BASELINE=<an older proxy binary> it compares that proxy with
KWP_BIN's instead: both run side by side against one broker, and each case
measures them in alternating rounds (proxy CPU per record; no direct client,
no latency); build/bench/produce_compare_results.json."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from benchlib import (BASELINE, bench_broker, binary_info,  # noqa: E402
                      compare_row, cpu_seconds, free_port, median,
                      print_compare, print_cpu_table, status_kb, wait_ready)

TOOL = os.path.join(ROOT, "build", "bench", "produce_bench")
PROXY = os.path.join(ROOT, os.environ.get("KWP_BIN", "build/kafka-ws-proxy"))
SCALE = float(os.environ.get("KWP_BENCH_SCALE", "1"))
PAIRS = int(os.environ.get("KWP_BENCH_PAIRS", "5"))
LATENCY_ONLY = os.environ.get("KWP_BENCH_LATENCY_ONLY") == "1"
WARM_RECORDS = 300000
LAT_RATE = 5000
# A deleted topic's files are unlinked log.segment.delete.delay.ms (60 s by
# default) after the deletion: the GBs the throughput runs wrote were then
# unlinked during the latency rounds, and the broker stalled for 20 ms to 5 s
# each time (seen with and without the proxy; its GC pauses stayed under
# 40 ms). Unlinked at once, between runs, they never overlap a measurement.
BROKER = {"log.segment.delete.delay.ms": "0"}
LAT_ROUNDS = 5
LAT_KEYS = ("p50_us", "p99_us", "p999_us")
CASES = ((100, 500000), (1000, 300000))  # value bytes, records per run
SOCKETS = (1, 16)


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
    time.sleep(1)  # the broker unlinks its files now, not in the next run


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
    d_args = ["--mode", "direct", "--bootstrap", b.bootstrap, "--topic",
              topic(admin)] + common
    p_args = ["--mode", "ws", "--port", str(port), "--topic",
              topic(admin)] + common
    d, p = start_tool(d_args), start_tool(p_args)
    r = {"direct": finish_tool(d, d_args), "proxy": finish_tool(p, p_args)}
    r["added_us"] = {k: r["proxy"][k] - r["direct"][k] for k in LAT_KEYS}
    return r


def case(admin, b, proxy, port, size, n, conns):
    """PAIRS runs of each side, alternating which goes first, each on a
    fresh topic: one run of each is at the mercy of the broker's mood of the
    moment (its rate moves by tens of percent from one run to the next).
    Each round has a third run, through the proxy with socketPayload=avro
    (`avro`), reversed with the rest (direct ws avro, avro ws direct, ...):
    the Avro framing's CPU per record beside JSON's, in the same rounds."""
    runs = []
    for i in range(PAIRS):
        pair = {}
        for side in (("direct", "ws", "avro") if i % 2 == 0 else
                     ("avro", "ws", "direct")):
            t = topic(admin)
            b0 = cpu_seconds(b.proc.pid)
            if side == "direct":
                pair["direct"] = run_tool([
                    "--mode", "direct", "--bootstrap", b.bootstrap, "--topic",
                    t, "--count", n, "--size", str(size)])
                pair["direct_broker_cpu_s"] = cpu_seconds(b.proc.pid) - b0
            else:
                key = "proxy" if side == "ws" else "avro"
                c0 = cpu_seconds(proxy.pid)
                pair[key] = run_tool([
                    "--mode", "ws", "--port", str(port), "--topic", t,
                    "--count", n, "--size", str(size), "--connections",
                    str(conns), "--payload",
                    "json" if side == "ws" else "avro"])
                pair[key + "_cpu_s"] = cpu_seconds(proxy.pid) - c0
                pair[key + "_broker_cpu_s"] = cpu_seconds(b.proc.pid) - b0
            drop(admin, t)
        pair["ratio"] = pair["proxy"]["msgs_per_sec"] / \
            pair["direct"]["msgs_per_sec"]
        runs.append(pair)
    d = median([r["direct"]["msgs_per_sec"] for r in runs])
    p = median([r["proxy"]["msgs_per_sec"] for r in runs])
    return {"size": size, "connections": conns, "runs": runs,
            "direct_msgs_per_sec": d, "proxy_msgs_per_sec": p,
            "avro_msgs_per_sec": median(
                [r["avro"]["msgs_per_sec"] for r in runs]),
            "avro_cpu_s_per_M": median(
                [r["avro_cpu_s"] / r["avro"]["acked"] * 1e6 for r in runs]),
            "avro_cpu_s_per_M_runs": [
                r["avro_cpu_s"] / r["avro"]["acked"] * 1e6 for r in runs],
            "proxy_cpu_s_per_M_runs": [
                r["proxy_cpu_s"] / r["proxy"]["acked"] * 1e6 for r in runs],
            "avro_load_generator_cpu_s_per_M": median(
                [r["avro"]["client_cpu_s"] / r["avro"]["acked"] * 1e6
                 for r in runs]),
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


def latency_set(admin, b, port):
    """LAT_ROUNDS rounds and the medians over them."""
    secs = str(10 * SCALE)
    rounds = [latency_round(admin, b, port, secs) for _ in range(LAT_ROUNDS)]
    return {"rate": LAT_RATE, "rounds": rounds,
            "added_us_median": {k: median([r["added_us"][k] for r in rounds])
                                for k in LAT_KEYS}}


def start_proxy(b, port, binary=PROXY, log="produce_proxy.log"):
    # Each proxy its own server-id: two side by side (the compare mode) are
    # two nodes of one cluster, and the session handler refuses a duplicate.
    env = dict(os.environ, WSPROXY_PORT=str(port),
               WSPROXY_SERVER_ID="bench-%d" % port,
               WSPROXY_BIND_INTERFACE="127.0.0.1",
               WSPROXY_KAFKA_BOOTSTRAP_HOSTS=b.bootstrap,
               WSPROXY_WS_KEEP_ALIVE_INTERVAL="0")
    log = open(os.path.join(ROOT, "build", "bench", log), "w")
    proxy = subprocess.Popen([binary], env=env, stderr=log)
    wait_ready(proxy, port)
    return proxy


def print_avro(rows):
    """socketPayload=avro beside JSON and the direct client, same rounds."""
    print("\nsocketPayload=avro (binary AvroProducerRecord / "
          "AvroProducerResult frames) beside JSON (text frames) and the "
          "direct client, the same %d rounds; proxy CPU s / 1M msgs "
          "(median, then each round), msg/s medians\n" % PAIRS)
    print("| size | sockets | proxy CPU JSON | proxy CPU Avro | Avro / JSON "
          "| JSON rounds | Avro rounds | direct client CPU | msg/s JSON | "
          "msg/s Avro | msg/s direct | load gen. CPU JSON / Avro |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d B | %d | %.2f | %.2f | %.2f | %s | %s | %.2f | %.0f | "
              "%.0f | %.0f | %.2f / %.2f |" % (
                  r["size"], r["connections"], r["proxy_cpu_s_per_M"],
                  r["avro_cpu_s_per_M"],
                  r["avro_cpu_s_per_M"] / r["proxy_cpu_s_per_M"],
                  " ".join("%.2f" % x for x in r["proxy_cpu_s_per_M_runs"]),
                  " ".join("%.2f" % x for x in r["avro_cpu_s_per_M_runs"]),
                  r["direct_cpu_s_per_M"], r["proxy_msgs_per_sec"],
                  r["avro_msgs_per_sec"], r["direct_msgs_per_sec"],
                  r["load_generator_cpu_s_per_M"],
                  r["avro_load_generator_cpu_s_per_M"]))


def print_latency(lat):
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


def main():
    b = bench_broker(BROKER)
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    port = free_port()
    proxy = start_proxy(b, port)
    results = {"machine": {"nproc": os.cpu_count(),
                           "note": "broker (JVM), proxy and load generator "
                                   "share the machine's cores"},
               "throughput": [], "latency": None}
    try:
        # Warm-up, unmeasured: the proxy's shared producers (one per worker)
        # and the broker. A fresh broker JVM is markedly slower for its first
        # few hundred MB (JIT), which would fall on whichever side ran first.
        for payload in ("json", "avro"):
            run_tool(["--mode", "ws", "--port", str(port), "--topic",
                      topic(admin), "--count", "2000", "--connections", "4",
                      "--payload", payload])
        for mode in ("direct", "ws"):
            warm = topic(admin)
            run_tool(["--mode", mode, "--bootstrap", b.bootstrap, "--port",
                      str(port), "--topic", warm, "--count",
                      str(int(WARM_RECORDS * SCALE)), "--size", "1000",
                      "--connections", "16"])
            drop(admin, warm)
        for size, count in () if LATENCY_ONLY else CASES:
            n = str(int(count * SCALE))
            for conns in SOCKETS:
                results["throughput"].append(
                    case(admin, b, proxy, port, size, n, conns))
        results["latency"] = latency_set(admin, b, port)
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
    print_avro(results["throughput"])
    print("\nwhere the machine's CPU went, s / 1M msgs (medians; the broker's "
          "while each run lasted)")
    print_cpu_table(
        ["direct client", "broker, direct run", "direct total"],
        ["proxy", "load generator", "broker, proxy run", "proxy total"],
        [(r["size"], r["connections"],
          (r["direct_cpu_s_per_M"], r["broker_cpu_s_per_M_direct"]),
          (r["proxy_cpu_s_per_M"], r["load_generator_cpu_s_per_M"],
           r["broker_cpu_s_per_M_proxy"])) for r in results["throughput"]])
    print_latency(results["latency"])
    print("\nproxy RSS %d KiB (peak %d KiB), exit %s" % (
        results["proxy_rss_kb"], results["proxy_peak_rss_kb"],
        results["proxy_exit"]))
    with open(os.path.join(ROOT, "build", "bench", "produce_results.json"),
              "w") as f:
        json.dump(results, f, indent=2)
    return 0 if results["proxy_exit"] == 0 else 1


def compare_case(admin, proxies, size, n, conns):
    """PAIRS rounds of each proxy, the old and the new, alternating which
    goes first (old new, new old, ...: a drift of the machine over the case
    falls on both), each run on a fresh topic."""
    runs = {"old": [], "new": []}
    for i in range(PAIRS):
        for side in ("old", "new") if i % 2 == 0 else ("new", "old"):
            proxy, port = proxies[side]
            t = topic(admin)
            c0 = cpu_seconds(proxy.pid)
            r = run_tool(["--mode", "ws", "--port", str(port), "--topic", t,
                          "--count", n, "--size", str(size),
                          "--connections", str(conns)])
            r["proxy_cpu_s"] = cpu_seconds(proxy.pid) - c0
            r["cpu_s_per_M"] = r["proxy_cpu_s"] / r["acked"] * 1e6
            r["round"] = i
            runs[side].append(r)
            drop(admin, t)
            if proxy.poll() is not None:
                raise RuntimeError("the %s proxy died (exit %s)" % (
                    side, proxy.returncode))
    row = compare_row("produce %d B x %d" % (size, conns),
                      [r["cpu_s_per_M"] for r in runs["old"]],
                      [r["cpu_s_per_M"] for r in runs["new"]],
                      [r["msgs_per_sec"] for r in runs["old"]],
                      [r["msgs_per_sec"] for r in runs["new"]])
    row.update(size=size, connections=conns, records=int(n), runs=runs)
    return row


def compare_main():
    """The compare mode: the proxy CPU per million records of BASELINE (old)
    and PROXY (new), both running against one broker, every case."""
    t_start = time.monotonic()
    load0 = os.getloadavg()
    old_bin = os.path.abspath(BASELINE)
    for path in (old_bin, PROXY):
        if not os.access(path, os.X_OK):
            print("produce_run: no proxy binary at %s" % path, file=sys.stderr)
            return 2
    results = {"machine": {"nproc": os.cpu_count()}, "pairs": PAIRS,
               "scale": SCALE, "old": binary_info(old_bin),
               "new": binary_info(PROXY), "cases": []}
    b = bench_broker(BROKER)
    b.start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    proxies = {}
    try:
        for side, binary in (("old", old_bin), ("new", PROXY)):
            port = free_port()
            proxies[side] = (start_proxy(b, port, binary,
                                         "produce_%s_proxy.log" % side), port)
        # Warm-up, unmeasured, the same for both: their shared producers
        # connect, and the broker JVM compiles its hot paths (a fresh one is
        # markedly slower for its first few hundred MB).
        warm = str(int(WARM_RECORDS * SCALE))
        for side in ("old", "new"):
            t = topic(admin)
            run_tool(["--mode", "ws", "--port", str(proxies[side][1]),
                      "--topic", t, "--count", "2000", "--connections", "4"])
            drop(admin, t)
        t = topic(admin)
        run_tool(["--mode", "direct", "--bootstrap", b.bootstrap, "--topic",
                  t, "--count", warm, "--size", "1000"])
        drop(admin, t)
        for side in ("old", "new"):
            t = topic(admin)
            run_tool(["--mode", "ws", "--port", str(proxies[side][1]),
                      "--topic", t, "--count", warm, "--size", "1000",
                      "--connections", "16"])
            drop(admin, t)
        for size, count in CASES:
            for conns in SOCKETS:
                results["cases"].append(compare_case(
                    admin, proxies, size, str(int(count * SCALE)), conns))
    finally:
        results["exit"] = {}
        for side, (proxy, _) in proxies.items():
            if proxy.poll() is None:
                proxy.send_signal(signal.SIGTERM)
            try:
                results["exit"][side] = proxy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proxy.kill()
                results["exit"][side] = "no exit within 30 s of SIGTERM"
        del admin  # before the broker goes: no reconnect noise
        b.cleanup()
    results["seconds"] = time.monotonic() - t_start
    results["loadavg"] = {"start": load0, "end": os.getloadavg()}
    print_compare(
        "produce, old and new proxy side by side, %d rounds of each per case "
        "(old first in odd rounds, new first in even ones), %d cores, load "
        "average %.2f at the start, %.2f at the end; records per run: %s" % (
            PAIRS, os.cpu_count(), load0[0], results["loadavg"]["end"][0],
            ", ".join("%d x %d B" % (int(c * SCALE), s) for s, c in CASES)),
        results["old"], results["new"], results["cases"])
    print("\nproxies' exit status after SIGTERM: old %s, new %s; total %.0f s"
          % (results["exit"].get("old"), results["exit"].get("new"),
             results["seconds"]))
    with open(os.path.join(ROOT, "build", "bench",
                           "produce_compare_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0 if results["exit"] == {"old": 0, "new": 0} else 1


if __name__ == "__main__":
    sys.exit(compare_main() if BASELINE else main())
