#!/usr/bin/env python3
"""Fails when a generated table is older than the code it measures.

Each generated table names the commit it was measured at (bench/RESULTS.md: "- date ...,
commit abc1234, ..."; docs/reliability.md: "(commit abc1234, ..."). A table is stale when a
commit after that one changed the code it measures (git log COMMIT..HEAD -- PATHS):

    bench/RESULTS.md        iocp/ client/ service/ bench/
    docs/reliability.md     iocp/ client/ service/ tests/ scripts/reliability-table.py

(Markdown files and bench/results/ under them do not count: prose and the results
themselves are not the code measured.)

unless the table says why it still holds, with a marker line anywhere in its section:

    <!-- figures hold at COMMIT: REASON -->

which moves the check to COMMIT (someone looked at the changes up to COMMIT and wrote down
why they do not move the figures); the changes after COMMIT are checked as before, so a
marker cannot go stale silently either. A measured paragraph with a date and no commit
("Latest full soak (..., 2026-11-26, ...)") is reported too: nobody can tell what it measured.

    python3 scripts/check-figures.py            report; exit 1 if anything is stale
    python3 scripts/check-figures.py --list     also every table that is current

scripts/test.sh runs it and fails on a stale table (IOCP_FIGURES_STRICT=0, or a shallow clone,
makes that a warning).
"""
import re
import subprocess
import sys

MEASURED = {
    "bench/RESULTS.md": ["iocp", "client", "service", "bench"],
    "docs/reliability.md": ["iocp", "client", "service", "tests", "scripts/reliability-table.py"],
}
COMMIT = re.compile(r"\bcommit ([0-9a-f]{7,40})\b")
MARKER = re.compile(r"<!-- figures hold at ([0-9a-f]{7,40}): (.+?) -->")
# A measured paragraph: "Latest ... soak" with a date; it must name a commit (or a marker).
DATED = re.compile(r"^Latest .*\b(20\d\d-\d\d-\d\d)\b")


def git(*args):
    r = subprocess.run(["git", *args], capture_output=True, text=True)
    return r.returncode, r.stdout.strip()


def sections(path):
    """(first line number, text) of each table's section: from a line naming a commit (or a
    dated measured paragraph) to the next heading or the next such line."""
    lines = open(path, encoding="utf-8").read().split("\n")
    starts = [i for i, line in enumerate(lines) if COMMIT.search(line) or DATED.match(line)]
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        for j in range(start + 1, end):
            if lines[j].startswith("#"):
                end = j
                break
        out.append((start + 1, "\n".join(lines[start:end])))
    return out


def changes_since(commit, paths):
    """The commits after `commit` that touched `paths`, newest first; None if unknown."""
    rc, _ = git("cat-file", "-e", commit + "^{commit}")
    if rc != 0:
        return None
    # Prose and the results themselves are not the code they measure.
    rc, log = git("log", "--format=%h %s", f"{commit}..HEAD", "--", *paths,
                  ":(exclude,glob)**/*.md", ":(exclude)bench/results")
    return [line[:100] for line in log.split("\n") if line] if rc == 0 else None


def main():
    show_all = "--list" in sys.argv[1:]
    stale = 0
    for path, paths in MEASURED.items():
        for line_no, text in sections(path):
            where = f"{path}:{line_no}"
            m = COMMIT.search(text.split("\n")[0])
            markers = list(MARKER.finditer(text))
            marker = markers[-1] if markers else None  # the last one written counts
            if m is None and marker is None:
                print(f"STALE {where}: measured figures that name no commit: "
                      f"{text.split(chr(10))[0][:90]}")
                stale += 1
                continue
            base = marker.group(1) if marker else m.group(1)
            changed = changes_since(base, paths)
            if changed is None:
                print(f"STALE {where}: commit {base} is not in this repository's history")
                stale += 1
            elif changed:
                print(f"STALE {where}: measured at {base}; {len(changed)} later commit(s) "
                      f"changed {' '.join(paths)}, newest: {changed[0]}")
                stale += 1
            elif show_all:
                held = f" (holds: {marker.group(2)})" if marker else ""
                print(f"ok    {where}: {base} is current for {' '.join(paths)}{held}")
    if stale:
        print(f"figures: {stale} table(s) older than the code they measure: regenerate them "
              "(bench/run.sh; scripts/test.sh then scripts/reliability-table.py), or add "
              "'<!-- figures hold at COMMIT: why -->' where the changes do not move them")
        return 1
    print("figures: every generated table is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
