#!/usr/bin/env python3
"""Prints the reliability summary table from a CTest log.

Reads build/<preset>/Testing/Temporary/LastTest.log (or the file given), takes every test of
the reliability suites (test_reliability.*, test_faults.*, test_badinput.*, the service's
takeover, pipe-abuse and stop cases, and any test that printed METRIC lines), and prints one row per scenario plus the totals the fault suite
promises: scenarios tried and passed, connections held, faults injected, bad inputs tried,
bytes lost (echoed bytes the scenario's clients sent that did not come back; must be 0),
contexts leaked (contexts still in use after the scenario's stop, less those it keeps on
purpose; must be 0). Each figure is what the scenario measured; "-" where it measures none
(a scenario without METRIC lines shows "-" throughout). Exits 1 if a scenario failed or lost
anything.
"""
import re
import sys

SUITES = (
    "test_reliability.",
    "test_faults.",
    "test_badinput.",
    # the service's share: a killed holder's mutex taken over, the status pipe under bad
    # requests, stops under load and with a peer that does not read
    "test_service.second_instance",
    "test_service.status_pipe_abuse",
    "test_service.stop_",
)


def parse(path):
    # By name, the last run wins: scripts/test.sh appends the log of a re-run to the first.
    tests = {}
    current = None
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"^\d+/\d+ Test: (\S+)", line)
        if m:
            current = {"name": m.group(1), "metrics": [], "passed": None}
            tests[current["name"]] = current
            continue
        if current is None:
            continue
        if line.startswith("METRIC "):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
            current["metrics"].append(fields)
        elif line.startswith("Test Passed") or line.startswith("Test Pass Reason"):
            current["passed"] = True
        elif line.startswith("Test Failed") or line.startswith("Test Fail Reason"):
            current["passed"] = False
    return [t for t in tests.values() if t["name"].startswith(SUITES) or t["metrics"]]


def figure(values):
    """The sum of what a scenario's METRIC lines measured, or None when none measured it."""
    measured = [int(v) for v in values if v not in (None, "-")]
    return sum(measured) if measured else None


def show(v):
    return "-" if v is None else str(v)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "build/mingw-wine/Testing/Temporary/LastTest.log"
    tests = parse(path)
    if not tests:
        print(f"reliability: no reliability scenarios in {path}")
        return 1
    keys = ("connections", "faults", "bad_inputs", "bytes_lost", "contexts_leaked")
    totals = dict.fromkeys(keys, 0)
    intended_total = 0
    rows = []
    for t in tests:
        sums = {k: figure(m.get(k) for m in t["metrics"]) for k in keys}
        intended = figure(m.get("intended_leaks") for m in t["metrics"]) or 0
        for k in keys:
            totals[k] += sums[k] or 0
        totals["contexts_leaked"] -= min(intended, sums["contexts_leaked"] or 0)
        intended_total += intended
        leaked = show(sums["contexts_leaked"])
        if intended:
            leaked += " (intended)"
        rows.append((t["name"], "pass" if t["passed"] else "FAIL", sums, leaked))
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  result  connections  faults  bad inputs  bytes lost  leaked")
    for name, result, s, leaked in rows:
        print(f"{name:<{width}}  {result:<6}  {show(s['connections']):>11}  "
              f"{show(s['faults']):>6}  {show(s['bad_inputs']):>10}  "
              f"{show(s['bytes_lost']):>10}  {leaked:>6}")
    passed = sum(1 for r in rows if r[1] == "pass")
    print(f"reliability: {len(rows)} scenarios tried, {passed} passed; connections held "
          f"{totals['connections']}; faults injected {totals['faults']}; bad inputs tried "
          f"{totals['bad_inputs']}; bytes lost {totals['bytes_lost']}; contexts leaked "
          f"{totals['contexts_leaked']} (and {intended_total} kept on purpose); "
          f"\"-\": not measured by that scenario")
    ok = passed == len(rows) and totals["bytes_lost"] == 0 and totals["contexts_leaked"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
