#!/usr/bin/env python3
"""Lists the failed tests of a CTest log that printed nothing at all.

Every test program here prints (the harness's case lines, a CHECK's failure, the crash
guard's report), so a failure with empty output means the Wine process never got to run the
program: seen twice in about 1,300 runs on 2026-11-26, in 0.01 s, never reproduced directly.
scripts/test.sh runs such tests once more; a failure that printed anything is never re-run.

    unstarted-tests.py LastTest.log   -> one test name per line (exit 0), nothing if none
"""
import re
import sys


def main() -> int:
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    blocks = re.split(r"^\d+/\d+ Test: ", text, flags=re.M)[1:]
    for block in blocks:
        name = block.split("\n", 1)[0].strip()
        failed = "Test Fail Reason:" in block or "Test Failed." in block
        silent = re.search(r"^Output:\n-+\n<end of output>$", block, flags=re.M) is not None
        if failed and silent:
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
