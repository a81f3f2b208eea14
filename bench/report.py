#!/usr/bin/env python3
"""bench/report.py: turns build/bench/runs.jsonl (one line per server run, written by run.sh)
into the comparison table (stdout), bench/results/latest.json and bench/RESULTS.md.

    report.py --runs RUNS.jsonl --out LATEST.json [...]   what run.sh calls
    report.py --markdown LATEST.json [--md-out RESULTS.md] RESULTS.md again from a JSON (from
        results/latest.json and results/wine10.json both, when it is one of them)
"""
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
    ("udp", "7 udp: {udp}", "datagrams/s"),
]
# The same over TLS 1.2 (ours and native only); each is compared with its plaintext workload of
# the same run, under the same Wine. churn-tls: connections/s are full handshakes/s.
WORKLOADS += [
    (key + "-tls", key + "-tls:" + title.split(":", 1)[1], "handshakes/s" if key == "churn" else unit)
    for key, title, unit in WORKLOADS
    if key not in ("scale", "udp")
]
# churn behind a load balancer: ours only (the peers do not speak PROXY), beside ours' plain
# churn of the same rounds (bench/run.sh runs the two side by side in each round).
WORKLOADS += [("churn-proxy", "5 churn, PROXY v2 on: {slots} slots", "conn/s")]
IMPLS = ("ours", "asio", "minimal", "native")
TLS_IMPLS = ("ours", "native")


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
        udp = lg.get("udp")
        if udp:
            m["udp_lost"] = udp.get("lost") if ok else None
            m["udp_late"] = udp.get("late") if ok else None
            m["udp_loss_ratio"] = udp.get("loss_ratio") if ok else None
        hs = (lg.get("tls") or {}).get("handshake_us") or {}
        if lg.get("tls"):
            m["handshake_p50_us"] = hs.get("p50") if ok else None
            m["handshake_p99_us"] = hs.get("p99") if ok else None
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


def md_stats(s, unit=""):
    if not s:
        return "-"
    return f"{fmt(s['median'])}{unit} ({fmt(s['min'])}..{fmt(s['max'])})"


def md_ratio(r):
    return f"{r:.2f}" if r else "-"


def markdown(result, json_path, heading="# Benchmark results"):
    """bench/RESULTS.md: the tables of one run, every figure from the JSON beside it."""
    meta = result["meta"]
    w = result["workloads"]
    out = [
        heading,
        "",
        "Generated by `bench/report.py` from "
        f"[`{os.path.relpath(json_path, os.path.dirname(os.path.dirname(os.path.abspath(json_path))))}`]"
        f"(results/{os.path.basename(json_path)}), written by `bench/run.sh`; do not edit by hand. "
        "Method and how to read it: [`README.md`](README.md).",
        "",
        f"- date {meta.get('date')}, commit {meta.get('git')}, {meta.get('wine')}, "
        f"{meta.get('cpus')} CPUs, kernel {meta.get('kernel')}",
        f"- {meta.get('rounds')} rounds x {meta.get('seconds_per_run'):g} s per workload, "
        f"{meta.get('server_threads')} server threads each, {meta.get('buffer_size')}-byte buffers",
        "- ours: " + str(meta.get("ours")),
        "- asio: " + str(meta.get("asio")),
        "- minimal: " + str(meta.get("minimal")),
        "- native: " + str(meta.get("native")),
    ]
    if any(k.endswith("-tls") for k in w):
        out += [
            f"- Wine: BENCH_WINE={meta.get('bench_wine')} ({meta.get('wine')}) for every row",
            "- TLS, ours: " + str(meta.get("ours_tls")),
            "- TLS, native: " + str(meta.get("native_tls")),
            "- TLS, load generator: " + str(meta.get("loadgen_tls")),
        ]
    loads = meta.get("loadavg_before_runs")
    if loads:
        out.append(
            f"- 1-minute load average before the runs: {loads['min']:.2f}..{loads['max']:.2f} "
            f"(median {loads['median']:.2f})"
        )
    if not meta.get("ours_measured", True):
        out.append(f"- **ours not measured**: {meta.get('ours_note')}")
    out += [
        "",
        "Medians of the rounds, (min..max) beside them. Ratios are of medians, measured in the "
        "same run.",
        "",
        "| workload | ours | asio | ours/asio | p99 ours (us) | p99 asio (us) | minimal (floor) "
        "| ours/minimal | native (calibration) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, _, unit in WORKLOADS:
        e = w.get(key)
        if not e or key == "scale" or key.endswith("-tls") or key.endswith("-proxy"):
            continue
        o, s, mn, n = (e.get(i) or {} for i in IMPLS)
        out.append(
            f"| {e['title']} ({unit}) | {md_stats(o.get('rate'))} | {md_stats(s.get('rate'))} "
            f"| {md_ratio(e.get('ratio_ours_asio'))} "
            f"| {fmt((o.get('p99_us') or {}).get('median'))} "
            f"| {fmt((s.get('p99_us') or {}).get('median'))} | {md_stats(mn.get('rate'))} "
            f"| {md_ratio(e.get('ratio_ours_minimal'))} | {md_stats(n.get('rate'))} |"
        )
    e = w.get("churn-proxy")
    if e:
        o = e.get("ours") or {}
        po = (w.get("churn") or {}).get("ours") or {}
        rr = e.get("round_ratios") or []
        out += [
            "",
            "Churn behind a load balancer: ours with `--proxy-protocol 127.0.0.1/32`, the load "
            "generator (`--proxy v2`) sending a PROXY v2 header, a different 10.x.y.z client "
            "each connection, before its message. The peers do not speak PROXY: the comparison "
            "is with ours' plain churn above, run beside it in every round.",
            "",
            "| workload | ours PROXY v2 | ours plain | PROXY/plain | per round | p99 PROXY (us) "
            "| p99 plain (us) |",
            "|---|---|---|---|---|---|---|",
            f"| {e['title']} ({e.get('unit')}) | {md_stats(o.get('rate'))} "
            f"| {md_stats(po.get('rate'))} | **{md_ratio(e.get('ratio_ours_proxy_plain'))}** "
            f"| {', '.join(f'{x:.2f}' for x in rr) or '-'} "
            f"| {fmt((o.get('p99_us') or {}).get('median'))} "
            f"| {fmt((po.get('p99_us') or {}).get('median'))} |",
        ]
    e = w.get("udp")
    if e:
        out += [
            "",
            f"{e['title']}: ours is `run --udp-only`, asio is " + str(meta.get("asio_udp")) + ", "
            "native is `native_echo --udp`. Latency in us (medians of the rounds); a datagram "
            "unanswered after the load generator's timeout is lost (and replaced); late: "
            "echoes that came after it.",
            "",
            "| server | datagrams/s | /asio | p50 | p99 | p99.9 | p99 / asio's | lost (total) | late (total) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        sa = e.get("asio") or {}
        for impl in ("ours", "asio", "native"):
            x = e.get(impl) or {}
            if not x:
                continue
            med = lambda m: (x.get(m) or {}).get("median")  # noqa: E731
            tot = lambda m: sum(  # noqa: E731
                ((r.get("loadgen") or {}).get("udp") or {}).get(m) or 0
                for r in e.get("runs", [])
                if r["impl"] == impl and run_ok(r)
            )
            out.append(
                f"| {impl} | {md_stats(x.get('rate'))} | {md_ratio(ratio(x.get('rate'), sa.get('rate')))} "
                f"| {fmt(med('p50_us'))} | {fmt(med('p99_us'))} | {fmt(med('p999_us'))} "
                f"| {md_ratio(ratio(x.get('p99_us'), sa.get('p99_us')))} | {tot('lost'):,} | {tot('late'):,} |"
            )
    tls_keys = [k for k, _, _ in WORKLOADS if k.endswith("-tls") and k in w]
    if tls_keys:
        out += [
            "",
            "TLS 1.2 (Schannel in ours, OpenSSL in native; the load generator is OpenSSL and "
            "verifies the chain), each beside the plaintext workload of the same run and Wine. "
            "Handshake: connect start to handshake done, as the load generator sees it "
            "(churn: the timed phase; the others: their warm-up).",
            "",
            "| workload | ours TLS | ours plaintext | ours TLS/plaintext | p99 ours TLS (us) "
            "| handshake p50 / p99 ours (us) | native TLS (calibration) | native plaintext "
            "| native TLS/plaintext | ours TLS/native TLS | protocol, cipher |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key in tls_keys:
            e = w[key]
            plain = w.get(key[: -len("-tls")]) or {}
            o, n = (e.get(i) or {} for i in TLS_IMPLS)
            po, pn = (plain.get(i) or {} for i in TLS_IMPLS)
            hs50 = fmt((o.get("handshake_p50_us") or {}).get("median"))
            hs99 = fmt((o.get("handshake_p99_us") or {}).get("median"))
            out.append(
                f"| {e['title']} ({e.get('unit')}) | {md_stats(o.get('rate'))} "
                f"| {md_stats(po.get('rate'))} | **{md_ratio(e.get('ratio_ours_tls_plain'))}** "
                f"| {fmt((o.get('p99_us') or {}).get('median'))} | {hs50} / {hs99} "
                f"| {md_stats(n.get('rate'))} | {md_stats(pn.get('rate'))} "
                f"| {md_ratio(e.get('ratio_native_tls_plain'))} "
                f"| {md_ratio(e.get('ratio_ours_native'))} | {e.get('tls') or '-'} |"
            )
    e = w.get("scale")
    if e:
        o, s, n = (e.get(i) or {} for i in ("ours", "asio", "native"))
        out += [
            "",
            f"{e['title']}: times in ms, memory from `/proc` VmRSS (server, and the prefix's "
            "wineserver).",
            "",
            "| metric | ours | asio | ours/asio | native (calibration) |",
            "|---|---|---|---|---|",
        ]
        for label, m in (
            ("connect all (ms)", "connect_ms"),
            ("all echo once (ms)", "echo_ms"),
            ("server VmRSS (MiB)", "rss_server_mib"),
            ("wineserver VmRSS (MiB)", "rss_wineserver_mib"),
            ("server bytes per connection", "server_bytes_per_conn"),
            ("server + wineserver bytes per connection", "total_bytes_per_conn"),
            ("graceful stop holding them (ms)", "stop_ms"),
        ):
            r = (e.get("ratio_ours_asio") or {}).get(m)
            out.append(
                f"| {label} | {md_stats(o.get(m))} | {md_stats(s.get(m))} | {md_ratio(r)} "
                f"| {md_stats(n.get(m))} |"
            )
    failed = [
        f"{r['workload']} round {r['round']} {r['impl']}"
        for key in w
        for r in w[key].get("runs", [])
        if not run_ok(r) and key != "scale"
    ]
    if failed:
        out += ["", "Runs with errors, left out of the numbers: " + ", ".join(failed) + "."]
    return "\n".join(out) + "\n"


RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# The files RESULTS.md shows, in this order: one per Wine (bench/run.sh's BENCH_WINE).
RESULTS_FILES = (
    ("latest.json", "# Benchmark results"),
    ("wine10.json", "## Under Wine 10: TLS beside plaintext (BENCH_WINE=10)"),
    ("udp.json", "## UDP echo (BENCH_WORKLOADS=udp BENCH_OUT=bench/results/udp.json)"),
)


def write_results_md(md_out, override=None):
    """RESULTS.md from results/latest.json and results/wine10.json, those that exist; override
    (path, result) stands in for the file of the same name."""
    parts = []
    for name, heading in RESULTS_FILES:
        path = os.path.join(RESULTS_DIR, name)
        if override and os.path.abspath(override[0]) == os.path.abspath(path):
            result = override[1]
        elif os.path.exists(path):
            with open(path) as f:
                result = json.load(f)
        else:
            continue
        parts.append(markdown(result, path, heading))
    with open(md_out, "w") as f:
        f.write("\n".join(parts))
    print(f"written: {md_out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--markdown", help="only write RESULTS.md from this latest.json")
    ap.add_argument("--md-out", default=os.path.join(os.path.dirname(__file__), "RESULTS.md"))
    ap.add_argument("--runs")
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--scale-connections", type=int, default=10000)
    ap.add_argument("--churn-slots", type=int, default=32)
    ap.add_argument("--udp-sockets", type=int, default=16)
    ap.add_argument("--udp-depth", type=int, default=4)
    ap.add_argument("--udp-size", type=int, default=64)
    ap.add_argument("--asio-udp-receives", type=int, default=1)
    ap.add_argument("--ours-note", default="")
    ap.add_argument("--have-ours", default="1")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--busy-cpus", type=int, default=0)
    ap.add_argument("--bench-wine", default="")
    a = ap.parse_args()
    if a.markdown:
        with open(a.markdown) as f:
            result = json.load(f)
        if os.path.basename(a.markdown) in dict(RESULTS_FILES):
            write_results_md(a.md_out, (a.markdown, result))
        else:
            with open(a.md_out, "w") as f:
                f.write(markdown(result, a.markdown))
            print(f"written: {a.md_out}")
        return
    if not a.runs or not a.out:
        ap.error("--runs and --out are required (or --markdown LATEST.json)")

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
            "ours_udp": "ours with --udp-only instead of TCP (the same options otherwise)",
            "asio_udp": f"`build/bench/asio_udp_echo.exe --threads N --receives {a.asio_udp_receives}` "
            "(asio's async_udp_echo_server example: one socket, async_receive_from, "
            "async_send_to back, receive again"
            + ("; one receive outstanding, as the example)" if a.asio_udp_receives == 1
               else f"; {a.asio_udp_receives} such chains on the socket, beyond the example)"),
            "native_udp": "build/bench/native_echo --udp (one socket, N threads, recvmmsg/sendmmsg)",
            "bench_wine": a.bench_wine,
            "ours_tls": "ours with --tls-pfx tests/tls/server.pfx --tls-password iocp-test "
            "(Schannel; RSA 2048 certificate)",
            "native_tls": "native_echo --tls-cert tests/tls/server-cert.pem --tls-key "
            "tests/tls/server-key.pem (OpenSSL, TLS 1.2 only)",
            "loadgen_tls": "loadgen --tls --tls-ca tests/tls/ca.pem (OpenSSL, SNI localhost, "
            "chain and name verified, no session resumption: every connection a full handshake)",
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
    tls_lines = []
    proxy_lines = []
    for key, title, unit in WORKLOADS:
        wl_runs = [r for r in runs if r["workload"] == key]
        if not wl_runs:
            continue
        title = title.format(
            slots=a.churn_slots,
            scale=a.scale_connections,
            udp=f"{a.udp_sockets} sockets, {a.udp_size} B, depth {a.udp_depth}",
        )
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
        if key.endswith("-tls"):
            entry["unit"] = unit
            plain = result["workloads"].get(key[: -len("-tls")]) or {}
            po, pn = (plain.get(i) or {} for i in TLS_IMPLS)
            entry["ratio_ours_tls_plain"] = ratio(o.get("rate"), po.get("rate"))
            entry["ratio_native_tls_plain"] = ratio(n.get("rate"), pn.get("rate"))
            entry["ratio_ours_native"] = ratio(o.get("rate"), n.get("rate"))
            tls = next(
                ((r.get("loadgen") or {}).get("tls") for r in wl_runs if run_ok(r) and r["impl"] == "ours"),
                None,
            ) or next(((r.get("loadgen") or {}).get("tls") for r in wl_runs if run_ok(r)), None)
            entry["tls"] = f"{tls.get('protocol')} {tls.get('cipher')}" if tls else None
            rt, rn = entry["ratio_ours_tls_plain"], entry["ratio_ours_native"]
            tls_lines.append(
                f"{title:44} {unit:12} | {fmt_stats(o.get('rate')):27} | "
                f"{fmt_stats(po.get('rate')):27} | {(f'{rt:.2f}' if rt else '-'):9} | "
                f"{fmt((o.get('p99_us') or {}).get('median')):11} | "
                f"{fmt((o.get('handshake_p50_us') or {}).get('median')):9} | "
                f"{fmt_stats(n.get('rate')):27} | {(f'{rn:.2f}' if rn else '-'):9}"
            )
        elif key.endswith("-proxy"):
            entry["unit"] = unit
            plain = result["workloads"].get(key[: -len("-proxy")]) or {}
            po = plain.get("ours") or {}
            entry["ratio_ours_proxy_plain"] = ratio(o.get("rate"), po.get("rate"))
            entry["ratio_ours_proxy_plain_p99"] = ratio(o.get("p99_us"), po.get("p99_us"))

            def by_round(rs):
                return {r["round"]: r["loadgen"]["rate"] for r in rs if r["impl"] == "ours" and run_ok(r)}

            with_proxy, without = by_round(wl_runs), by_round(plain.get("runs", []))
            # Each round's pair ran side by side: its ratio shows the noise the medians hide.
            entry["round_ratios"] = [
                with_proxy[k] / without[k] for k in sorted(with_proxy) if without.get(k)
            ]
            rp, rr = entry["ratio_ours_proxy_plain"], entry["round_ratios"]
            proxy_lines.append(
                f"{title:44} {unit:9} | {fmt_stats(o.get('rate')):27} | "
                f"{fmt_stats(po.get('rate')):27} | {(f'{rp:.2f}' if rp else '-'):11} | "
                f"{(', '.join(f'{x:.2f}' for x in rr) or '-'):22} | "
                f"{fmt((o.get('p99_us') or {}).get('median')):11} | "
                f"{fmt((po.get('p99_us') or {}).get('median')):11}"
            )
        elif key != "scale":
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
    if proxy_lines:
        print()
        h = (
            f"{'PROXY protocol (ours, same rounds)':44} {'metric':9} | {'ours PROXY v2':27} | "
            f"{'ours plain':27} | {'PROXY/plain':11} | {'per round':22} | {'p99 us PROXY':11} | "
            f"{'p99 us plain':11}"
        )
        print(h)
        print("-" * len(h))
        print("\n".join(proxy_lines))
    if tls_lines:
        print()
        h = (
            f"{'TLS workload (same run, same Wine)':44} {'metric':12} | {'ours TLS':27} | "
            f"{'ours plaintext':27} | {'TLS/plain':9} | {'p99 us ours':11} | {'hs p50 us':9} | "
            f"{'native TLS (calibration)':27} | {'ours/nat.':9}"
        )
        print(h)
        print("-" * len(h))
        print("\n".join(tls_lines))
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
    if any(
        os.path.abspath(a.out) == os.path.abspath(os.path.join(RESULTS_DIR, name))
        for name, _ in RESULTS_FILES
    ):
        write_results_md(a.md_out, (a.out, result))


if __name__ == "__main__":
    main()
