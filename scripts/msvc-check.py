#!/usr/bin/env python3
"""The MSVC-dialect gate: every C file of iocp/, common/, client/, service/, tests/ and
examples/ that the build compiles, checked twice with warnings as errors:

  1. clang in MSVC mode (--target=x86_64-pc-windows-msvc, -fms-compatibility, _MSC_VER 1940 =
     Visual Studio 2022 17.10) against the MinGW-w64 headers: MSVC's language rules, its
     predefined macros (_MSC_VER and _WIN32 without __MINGW32__ or __GNUC__ ... except that
     -fgnuc-version=4.2.1 is needed for those headers), and the closest clang twins of the
     /W4 warnings that stopped the build before: C4996 (the CRT's "unsafe" functions; the
     MinGW headers mark them deprecated with __MINGW_MSVC_COMPAT_WARNINGS), C4244/C4267
     (narrowing: -Wshorten-64-to-32, -Wimplicit-int-conversion, -Wfloat-conversion),
     C4100/C4189 (unused), C4456-C4459 (shadowing), C4701 (maybe uninitialised);
  2. MinGW GCC with -std=c11 -pedantic.

Each file gets the defines and include folders the build gives it (compile_commands.json of
the mingw-wine preset), so a file is checked as it is compiled. What this cannot check: the
MSVC compiler itself (cl.exe's own front end and code generation), C4127 (constant
conditions: no clang twin; kept out by review), and the Windows SDK's headers (they differ
from MinGW's in places). README's "Building on Windows" says so.

    msvc-check.py [BUILD_DIR]     default build/mingw-wine; exits 1 on any finding
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ("iocp/", "common/", "client/", "service/", "tests/", "examples/")
MINGW_INCLUDE = "/usr/x86_64-w64-mingw32/include"

MSVC_MODE = [
    "clang", "--target=x86_64-pc-windows-msvc", "-fms-compatibility",
    "-fms-compatibility-version=19.40", "-fgnuc-version=4.2.1", "-std=c11",
    "-fsyntax-only", "-isystem", MINGW_INCLUDE, "-D__MINGW_MSVC_COMPAT_WARNINGS",
    "-Werror", "-Wall", "-Wextra", "-Wshadow", "-Wno-unused-command-line-argument",
    "-Wshorten-64-to-32", "-Wimplicit-int-conversion", "-Wfloat-conversion",
    "-Wsometimes-uninitialized", "-Wno-error=deprecated-declarations",
    # MSVC's C11 mode has no VLAs (C4200-family errors): refuse them here too.
    "-Wvla",
]
# MinGW's headers mark memcpy and memmove "unsafe" too; MSVC does so only when
# _CRT_SECURE_DEPRECATE_MEMORY is defined. Every other deprecation is C4996, an error here.
NOT_C4996 = ("'memcpy' is deprecated", "'memmove' is deprecated")
GCC_PEDANTIC = [
    "x86_64-w64-mingw32-gcc", "-std=c11", "-pedantic", "-fsyntax-only", "-Werror", "-Wall",
    "-Wextra",
]


def build_flags(entry):
    """The -D and -I arguments the build gives this file (paths made absolute)."""
    args = entry.get("arguments") or shlex.split(entry["command"])
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in ("-D", "-I", "-isystem") and i + 1 < len(args):
            val = args[i + 1]
            if a != "-D":
                val = os.path.join(entry["directory"], val)
            out += [a if a != "-isystem" else "-I", val]
            i += 2
            continue
        if a.startswith("-D"):
            out.append(a)
        elif a.startswith("-I"):
            out.append("-I" + os.path.join(entry["directory"], a[2:]))
        i += 1
    return out


def check(entry):
    src = entry["file"]
    flags = build_flags(entry)
    problems = []
    for name, cmd in (("clang MSVC mode", MSVC_MODE), ("gcc -std=c11 -pedantic", GCC_PEDANTIC)):
        r = subprocess.run(cmd + flags + [src], capture_output=True, text=True,
                           cwd=entry["directory"])
        found = [line for line in r.stderr.splitlines()
                 if ": error: " in line or (": warning: " in line and "is deprecated" in line
                                            and not any(x in line for x in NOT_C4996))]
        if r.returncode != 0 or found:
            problems.append(f"--- {name}: {os.path.relpath(src, ROOT)}\n" + "\n".join(found or
                            r.stderr.strip().splitlines()))
    return problems


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "mingw-wine")
    db = os.path.join(build, "compile_commands.json")
    if not os.path.exists(db):
        print(f"msvc-check: {db} is missing: configure with `cmake --preset mingw-wine` first")
        return 2
    entries, seen = [], set()
    for e in json.load(open(db)):
        rel = os.path.relpath(e["file"], ROOT)
        # One check per file and set of defines (the engine is built twice: with and without
        # fault injection).
        key = (rel, tuple(f for f in build_flags(e) if f.startswith("-D")))
        if rel.endswith(".c") and rel.startswith(CHECKED) and key not in seen:
            seen.add(key)
            entries.append(e)
    if not entries:
        print("msvc-check: no C file of iocp/, common/, client/, service/, tests/ or examples/ in the build")
        return 2
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        problems = [p for ps in pool.map(check, entries) for p in ps]
    for p in problems:
        print(p)
    files = len({e["file"] for e in entries})
    print(f"msvc-check: {files} files ({len(entries)} compilations) x 2 dialects: "
          f"{len(problems)} with findings")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
