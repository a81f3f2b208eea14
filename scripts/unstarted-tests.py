#!/usr/bin/env python3
"""Lists the failed tests of a CTest log that Wine, not the test, failed: run them once more.

Two kinds, each seen only under Wine and never reproduced directly:
- a failure that printed nothing at all: the Wine process never got to run the program (every
  test program prints something). Seen twice in about 1,300 runs on 2026-11-26, in 0.01 s.
- a failure whose only output is Wine's own "wine client error:0: recvmsg: Connection reset by
  peer" in a few hundredths of a second: the Wine process lost its wineserver before the
  program ran (seen once in about 400 runs on 2026-12-01, test_client.echo_timeout).
- a timeout after the test printed its own verdict "1 passed, 0 failed": every check had
  passed, and the process then did not end (CTest waits for its output pipe, which a child
  process can hold). Seen once in 32 suite runs on 2026-12-01 (test_service.status_pipe_abuse).
scripts/test.sh runs such tests once more, and only when they are all that failed; any other
failure is never re-run, and the re-run must pass.

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
        output = re.search(r"^Output:\n-+\n(.*?)<end of output>$", block, flags=re.M | re.S)
        wine_only = output is not None and all(
            line.startswith("wine client error:") for line in output.group(1).splitlines() if line
        ) and output.group(1).strip() != ""
        # With PASS_REGULAR_EXPRESSION the exit code does not count: a test that printed its
        # verdict and still failed ran into its timeout.
        hung_after_verdict = (
            "Required regular expression found." in block
            and re.search(r"^1 passed, 0 failed$", block, flags=re.M) is not None
        )
        if failed and (silent or wine_only or hung_after_verdict):
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
