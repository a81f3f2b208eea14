#!/usr/bin/env python3
"""bench/report.py: turns build/bench/runs.jsonl (one line per server run, written by run.sh)
into the comparison table (stdout) and bench/results/latest.json."""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess

WORKLOADS = [
    ("pingpong", "1 ping-pong: 1 conn, 64 B, depth 1", "msg/s"),
    ("pipelined", "2 pipelined: 100 conns, 64 B, depth 4", "msg/s"),
    ("bulk", "3 bulk: 100 conns, 4 KiB, depth 4", "msg/s"),
    ("many", "4 many: 1000 conns, 64 B, depth 1", "msg/s"),
    ("churn", "5 churn: {slots} slots connect/echo/close", "conn/s"),
    ("scale", "6 scale: {scale} conns, all echo once", ""),
]
IMPLS = ("ours", "asio", "minimal", "native")


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def run_ok(r):
    lg = r.get("loadgen") or {}
    return (
        not r.get("failed")
        and not r.get("server_gone_early")
        and r.get("loadgen_exit") == 0
        and lg.get("errors") == 0
    )


def metrics_of(r):
    """The numbers one run contributes: name -> value (None when not measured)."""
    lg = r.get("loadgen") or {}
    lat = lg.get("lat_us") or {}
    m = {}
    if r["workload"] != "scale":
        ok = run_ok(r)
        m["rate"] = lg.get("rate") if ok else None
        m["p50_us"] = lat.get("p50") if ok else None
        m["p99_us"] = lat.get("p99") if ok else None
        m["p999_us"] = lat.get("p999") if ok else None
        m["mb_per_s"] = lg.get("mb_per_s") if ok else None
        return m
    conns = lg.get("established") or 0
    ok = run_ok(r) or (
        conns and lg.get("count") == lg.get("connections") and not r.get("server_gone_early")
    )
    srv0, srv1 = num(r.get("rss_server_kb_before")), num(r.get("rss_server_kb"))
    ws0, ws1 = num(r.get("rss_wineserver_kb_before")), num(r.get("rss_wineserver_kb"))
    m["connect_ms"] = lg.get("connect_ms") if ok else None
    m["echo_ms"] = lg.get("echo_ms") if ok else None
    m["rss_server_mib"] = srv1 / 1024 if ok and srv1 else None
    m["rss_wineserver_mib"] = ws1 / 1024 if ok and ws1 else None
    m["server_bytes_per_conn"] = (srv1 - srv0) * 1024 / conns if ok and conns and srv1 else None
    m["total_bytes_per_conn"] = (
        ((srv1 - srv0) + ((ws1 or 0) - (ws0 or 0))) * 1024 / conns if ok and conns and srv1 else None
    )
    # The stop of a run that did not hold every connection is not the same measurement.
    m["stop_ms"] = num(r.get("stop_ms")) if ok else None
    m["closed_by_server"] = lg.get("closed_by_server") if ok else None
    m["reset_by_server"] = lg.get("reset_by_server") if ok else None
    return m


def fmt(x, unit=""):
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) < 100 and x != int(x):
        s = f"{x:.1f}"
    else:
        s = f"{x:,.0f}"
    return s + unit


def fmt_stats(s):
    if not s:
        return "-"
    return f"{fmt(s['median'])} [{fmt(s['min'])}..{fmt(s['max'])}]"


def ratio(a, b):
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def tool_version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001: informational only
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--scale-connections", type=int, default=10000)
    ap.add_argument("--churn-slots", type=int, default=32)
    ap.add_argument("--ours-note", default="")
    ap.add_argument("--have-ours", default="1")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--busy-cpus", type=int, default=0)
    a = ap.parse_args()

    runs = []
    with open(a.runs) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))

    result = {
        "meta": {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git": tool_version(["git", "-C", os.path.dirname(a.out), "rev-parse", "--short", "HEAD"]),
            "wine": tool_version(["wine", "--version"]),
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "rounds": a.rounds,
            "seconds_per_run": a.seconds,
            "server_threads": a.workers,
            "buffer_size": 16384,
            "wineprefix": a.prefix,
            "busy_loops_nice19": a.busy_cpus,
            "ours": "build/mingw-wine/service/iocp-service.exe run --port 0 --workers N "
            "--buffer-size 16384",
            "asio": "build/bench/asio_echo.exe --threads N --buffer-size 16384 (standalone asio, "
            "MinGW g++ -O2)",
            "minimal": "build/bench/minimal_echo.exe --threads N --buffer-size 16384 (the floor: "
            "the least an IOCP echo loop can do; MinGW gcc -O2)",
            "native": "build/bench/native_echo (Linux epoll, calibration of the load generator)",
            "ours_note": a.ours_note if a.have_ours == "1" else (a.ours_note or "not built"),
            "ours_measured": a.have_ours == "1",
        },
        "workloads": {},
    }

    lines = []
    hdr = (
        f"{'workload':44} {'metric':9} | {'ours median [min..max]':27} | "
        f"{'asio median [min..max]':27} | {'ours/asio':9} | {'p99 us ours':11} | "
        f"{'p99 us asio':11} | {'minimal (floor)':27} | {'ours/min':8} | "
        f"{'native (calibration)':27}"
    )
    lines.append(hdr)
    lines.append("-" * len(hdr))
    scale_lines = []
    for key, title, unit in WORKLOADS:
        wl_runs = [r for r in runs if r["workload"] == key]
        if not wl_runs:
            continue
        title = title.format(slots=a.churn_slots, scale=a.scale_connections)
        entry = {"title": title, "runs": wl_runs}
        per_impl = {}
        for impl in IMPLS:
            ms = [metrics_of(r) for r in wl_runs if r["impl"] == impl]
            if not ms:
                continue
            names = sorted({n for m in ms for n in m})
            per_impl[impl] = {n: stats([m.get(n) for m in ms]) for n in names}
            per_impl[impl]["runs"] = len(ms)
            per_impl[impl]["failed_runs"] = sum(
                1 for r in wl_runs if r["impl"] == impl and not run_ok(r)
            )
        entry.update(per_impl)
        o, s, mn, n = (per_impl.get(i, {}) for i in IMPLS)
        if key != "scale":
            entry["unit"] = unit
            entry["ratio_ours_asio"] = ratio(o.get("rate"), s.get("rate"))
            entry["ratio_ours_asio_p99"] = ratio(o.get("p99_us"), s.get("p99_us"))
            entry["ratio_ours_minimal"] = ratio(o.get("rate"), mn.get("rate"))
            entry["ratio_minimal_asio"] = ratio(mn.get("rate"), s.get("rate"))
            r = entry["ratio_ours_asio"]
            rm = entry["ratio_ours_minimal"]
            lines.append(
                f"{title:44} {unit:9} | {fmt_stats(o.get('rate')):27} | "
                f"{fmt_stats(s.get('rate')):27} | {(f'{r:.2f}' if r else '-'):9} | "
                f"{fmt((o.get('p99_us') or {}).get('median')):11} | "
                f"{fmt((s.get('p99_us') or {}).get('median')):11} | "
                f"{fmt_stats(mn.get('rate')):27} | {(f'{rm:.2f}' if rm else '-'):8} | "
                f"{fmt_stats(n.get('rate')):27}"
            )
        else:
            rows = [
                ("connect ms", "connect_ms"),
                ("echo ms", "echo_ms"),
                ("server MiB", "rss_server_mib"),
                ("wineserver MiB", "rss_wineserver_mib"),
                ("server B/conn", "server_bytes_per_conn"),
                ("+wineserver B/conn", "total_bytes_per_conn"),
                ("stop ms", "stop_ms"),
            ]
            entry["ratio_ours_asio"] = {
                m: ratio(o.get(m), s.get(m)) for _, m in rows if o.get(m) and s.get(m)
            }
            for label, m in rows:
                r = ratio(o.get(m), s.get(m))
                scale_lines.append(
                    f"{title if label == 'connect ms' else '':44} {label:18} | "
                    f"{fmt_stats(o.get(m)):27} | {fmt_stats(s.get(m)):27} | "
                    f"{(f'{r:.2f}' if r else '-'):9} | {fmt_stats(n.get(m)):27}"
                )
        result["workloads"][key] = entry

    meta = result["meta"]
    loads = [r["loadavg_before"] for r in runs if isinstance(r.get("loadavg_before"), (int, float))]
    meta["loadavg_before_runs"] = stats(loads)
    print()
    print(
        f"Echo benchmark: ours vs asio (and the minimal IOCP loop), all under "
        f"{meta['wine'] or 'Wine'} in one prefix; "
        f"loadgen native; {a.rounds} round(s) x {a.seconds:g} s; {a.workers} server threads; "
        f"{meta['cpus']} CPUs"
    )
    if loads:
        print(
            f"1-min load average before the runs: {min(loads):.2f}..{max(loads):.2f} "
            f"(the servers, wineserver and loadgen share the CPUs with anything else running)"
        )
    if a.busy_cpus:
        print(
            f"EXPERIMENT: {a.busy_cpus} busy loop(s) at nice 19 kept the CPUs out of idle "
            f"(BENCH_BUSY_CPUS); not comparable with a normal run"
        )
    if not meta["ours_measured"]:
        print(f"ours: NOT MEASURED ({meta['ours_note']})")
    elif meta["ours_note"]:
        print(f"ours: {meta['ours_note']}")
    print()
    print("\n".join(lines))
    if scale_lines:
        print()
        h = (
            f"{'workload':44} {'metric':18} | {'ours median [min..max]':27} | "
            f"{'asio median [min..max]':27} | {'ours/asio':9} | {'native (calibration)':27}"
        )
        print(h)
        print("-" * len(h))
        print("\n".join(scale_lines))
    failed = [
        f"{r['workload']} r{r['round']} {r['impl']}"
        + (" (server stopped before the bench stopped it; repeated)" if r.get("server_gone_early") else "")
        for r in runs
        if not run_ok(r)
    ]
    if failed:
        print()
        print("runs with errors (left out of the numbers): " + ", ".join(failed))
    print()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"written: {a.out}")


if __name__ == "__main__":
    main()
