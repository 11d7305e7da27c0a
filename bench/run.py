#!/usr/bin/env python3
"""Benchmarks kafka-ws-proxy's /echo endpoint in dev mode (no Kafka needed).

Starts build/kafka-ws-proxy --dev on a free loopback port, then drives it with
build/bench/ws_echo_bench: memory per idle WebSocket connection, and echo round
trips (1 and 100 connections, 64 B and 1 KiB text messages) with latency
percentiles and the proxy's CPU time per million round trips. Prints a markdown
table, writes build/bench/results.json, stops the proxy with SIGTERM and checks
that it exits 0. Exits 1 when anything went wrong (errors, crash, bad exit).

Environment: KWP_BENCH_SECONDS (default 10), KWP_BENCH_WARMUP (default 2),
KWP_BENCH_IDLE (default 2000), KWP_BIN, KWP_BENCH_TOOL.
"""
import http.client
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time

from benchlib import cpu_seconds, free_port

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KWP_BIN", os.path.join(TOP, "build", "kafka-ws-proxy"))
TOOL = os.environ.get("KWP_BENCH_TOOL",
                      os.path.join(TOP, "build", "bench", "ws_echo_bench"))
OUT_DIR = os.path.join(TOP, "build", "bench")
SECONDS = float(os.environ.get("KWP_BENCH_SECONDS", "10"))
WARMUP = float(os.environ.get("KWP_BENCH_WARMUP", "2"))
IDLE = int(os.environ.get("KWP_BENCH_IDLE", "2000"))
ECHO_RUNS = [(1, 64), (1, 1024), (100, 64), (100, 1024)]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "model_name": model,
        "kernel": platform.release(),
        "note": f"load generator and proxy share the machine's "
                f"{os.cpu_count()} cores (both on 127.0.0.1, no pinning)",
    }


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Proxy:
    def __init__(self, port):
        self.port = port
        self.log_path = os.path.join(OUT_DIR, "proxy.log")
        env = dict(os.environ,
                   WSPROXY_PORT=str(port),
                   WSPROXY_BIND_INTERFACE="127.0.0.1",
                   WSPROXY_ECHO_ENDPOINT_ENABLED="true",
                   WSPROXY_WS_KEEP_ALIVE_INTERVAL="0",
                   WSPROXY_MAX_CONNECTIONS="20000")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BIN, "--dev"], env=env, cwd=TOP,
                                     stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def healthy(self, timeout=2.0):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=timeout)
            c.request("GET", "/healthcheck")
            r = c.getresponse()
            r.read()
            c.close()
            return r.status == 200
        except OSError:
            return False

    def wait_healthy(self, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.healthy():
                return True
            time.sleep(0.2)
        return False

    def alive(self):
        return self.proc.poll() is None

    def stop(self, seconds=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            rc = f"did not exit within {seconds} s of SIGTERM (killed, {rc})"
        self.log_file.close()
        return rc

    def log_tail(self, n=20):
        with open(self.log_path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return lines[-n:]


def run_tool(args, on_stderr=None, on_stdout=None, timeout=120):
    """Runs the load generator; returns (rc, stdout JSON lines, stderr lines).
    on_stderr/on_stdout are called for each line as it arrives."""
    proc = subprocess.Popen([TOOL] + [str(a) for a in args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err_lines, out_lines = [], []

    def pump(stream, sink, cb):
        for line in stream:
            line = line.rstrip("\n")
            sink.append(line)
            if cb:
                cb(proc, line)

    threads = [threading.Thread(target=pump, args=(proc.stderr, err_lines,
                                                   on_stderr)),
               threading.Thread(target=pump, args=(proc.stdout, out_lines,
                                                   on_stdout))]
    for t in threads:
        t.start()
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = f"load generator hung (killed after {timeout} s)"
        proc.wait()
    for t in threads:
        t.join()
    parsed = []
    for line in out_lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pass
    return rc, parsed, err_lines


def bench_idle(proxy, n):
    """VmRSS of the proxy before and while n idle WebSockets are open."""
    # A few connections first, so one-off allocations (thread arenas, first
    # buffers) are not charged to the measured connections.
    run_tool(["--port", proxy.port, "--idle", 20, "--hold", 0], timeout=60)
    time.sleep(0.5)
    res = {"connections": n, "rss_before": rss_bytes(proxy.pid)}

    def on_stdout(proc, line):
        if line.startswith('{"idle_connections"'):
            time.sleep(0.5)  # let the workers finish their bookkeeping
            res["rss_after"] = rss_bytes(proxy.pid)

    hold = 3
    rc, out, err = run_tool(["--port", proxy.port, "--idle", n, "--hold",
                             hold], on_stdout=on_stdout, timeout=120 + hold)
    time.sleep(0.5)
    res["rss_after_close"] = rss_bytes(proxy.pid) if proxy.alive() else None
    opened = next((o for o in out if "idle_connections" in o), {})
    closed = next((o for o in out if "idle_closed" in o), {})
    res.update(opened=opened.get("idle_connections"),
               closed_cleanly=closed.get("idle_closed"),
               errors=closed.get("errors", opened.get("errors")),
               tool_rc=rc, tool_stderr=err[-20:])
    if "rss_after" in res and res["opened"]:
        res["bytes_per_connection"] = round(
            (res["rss_after"] - res["rss_before"]) / res["opened"])
    return res


def bench_echo(proxy, conns, size):
    marks = {}

    def on_stderr(proc, line):
        for key in ("measure start", "measure end"):
            if line.endswith(key):
                marks[key] = (cpu_seconds(proxy.pid), cpu_seconds(proc.pid))

    args = ["--port", proxy.port, "--connections", conns, "--size", size,
            "--seconds", SECONDS, "--warmup", WARMUP]
    rc, out, err = run_tool(args, on_stderr=on_stderr,
                            timeout=WARMUP + SECONDS + 60)
    res = dict(out[-1]) if out else {"connections": conns, "size": size}
    res.update(tool_rc=rc, tool_stderr=[l for l in err if "error" in l][:20])
    if "measure start" in marks and "measure end" in marks:
        p0, c0 = marks["measure start"]
        p1, c1 = marks["measure end"]
        res["proxy_cpu_s"] = round(p1 - p0, 2)
        res["client_cpu_s"] = round(c1 - c0, 2)
        rts = res.get("round_trips") or 0
        if rts:
            res["proxy_cpu_s_per_M_rt"] = round((p1 - p0) / rts * 1e6, 2)
            res["client_cpu_s_per_M_rt"] = round((c1 - c0) / rts * 1e6, 2)
    return res


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(results):
    m = results["machine"]
    lines = [f"Machine: {m['nproc']} x {m['model_name']}, kernel "
             f"{m['kernel']}; {m['note']}.",
             f"Echo runs: {SECONDS:g} s each after {WARMUP:g} s warm-up.", "",
             "| connections | size (B) | round trips | rt/s | p50 (us) | "
             "p99 (us) | p99.9 (us) | errors | proxy CPU s / M rt | "
             "client CPU s / M rt |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: |"]
    for r in results["echo"]:
        lines.append("| " + " | ".join(fmt(r.get(k)) for k in (
            "connections", "size", "round_trips", "rt_per_sec", "p50_us",
            "p99_us", "p999_us", "errors", "proxy_cpu_s_per_M_rt",
            "client_cpu_s_per_M_rt")) + " |")
    i = results.get("idle")
    if i:
        lines += ["", "| idle connections | RSS before | RSS with them open | "
                  "RSS after closing | bytes per connection |",
                  "| ---: | ---: | ---: | ---: | ---: |",
                  f"| {fmt(i.get('opened'))} | {fmt(i.get('rss_before'))} | "
                  f"{fmt(i.get('rss_after'))} | "
                  f"{fmt(i.get('rss_after_close'))} | "
                  f"{fmt(i.get('bytes_per_connection'))} |"]
    lines += ["", f"Proxy exit status after SIGTERM: {results.get('proxy_exit')}"]
    return "\n".join(lines)


def main():
    for path in (BIN, TOOL):
        if not os.access(path, os.X_OK):
            log(f"{path} is missing: run `make all` and `make bench` first")
            return 2
    os.makedirs(OUT_DIR, exist_ok=True)
    nofile = raise_nofile(IDLE + 1024)  # inherited by both children
    results = {"machine": machine(), "seconds": SECONDS, "warmup": WARMUP,
               "nofile": nofile, "echo": [], "problems": []}
    proxy = Proxy(free_port())
    problems = results["problems"]
    try:
        if not proxy.wait_healthy():
            problems.append("proxy never answered /healthcheck")
            return finish(results, proxy)
        log(f"proxy pid {proxy.pid} on 127.0.0.1:{proxy.port}")
        log(f"idle memory: {IDLE} connections")
        results["idle"] = bench_idle(proxy, IDLE)
        check(results["idle"], proxy, problems, f"idle {IDLE}")
        for conns, size in ECHO_RUNS:
            if not proxy.alive():
                break
            log(f"echo: {conns} connection(s), {size} B")
            r = bench_echo(proxy, conns, size)
            results["echo"].append(r)
            log(json.dumps({k: r.get(k) for k in (
                "round_trips", "rt_per_sec", "p50_us", "p99_us", "p999_us",
                "errors", "proxy_cpu_s_per_M_rt")}))
            check(r, proxy, problems, f"echo {conns}x{size}B")
    finally:
        rc = finish(results, proxy)
    return rc


def check(r, proxy, problems, what):
    if r.get("errors"):
        problems.append(f"{what}: {r['errors']} errors: {r.get('tool_stderr')}")
    if r.get("tool_rc") not in (0, None) and not r.get("errors"):
        problems.append(f"{what}: load generator exit {r.get('tool_rc')}")
    if not proxy.alive():
        problems.append(f"{what}: proxy died (status {proxy.proc.returncode})")
    elif not proxy.healthy(timeout=5):
        problems.append(f"{what}: proxy no longer answers /healthcheck")


def finish(results, proxy):
    if "proxy_exit" in results:
        return 1 if results["problems"] else 0
    rc = proxy.stop()
    results["proxy_exit"] = rc
    if rc != 0:
        results["problems"].append(f"proxy exit status {rc} after SIGTERM")
    if results["problems"]:
        results["proxy_log_tail"] = proxy.log_tail()
    with open(os.path.join(OUT_DIR, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    for p in results["problems"]:
        print(f"PROBLEM: {p}")
    if results["problems"]:
        print("proxy log tail:\n  " + "\n  ".join(results["proxy_log_tail"]))
    print(f"results: {os.path.relpath(os.path.join(OUT_DIR, 'results.json'))}")
    return 1 if results["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
