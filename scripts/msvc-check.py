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
  2. MinGW GCC with -std=c11 -pedantic;
  3. MSVC's own C4996 list, known here: every call of a function that MSVC's CRT, its POSIX
     names or Winsock mark deprecated (sprintf, strcpy, sscanf, fopen, getenv, strtok, strdup,
     inet_addr, GetVersionExW, ...; C4996 under /W4, an error under /WX) fails the gate. The
     MinGW headers' deprecation marks (step 1) miss many of them (sprintf among them), so
     the source is scanned for the names themselves (comments and strings left out).

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
import re
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
# MSVC's C4996 list: the CRT functions _CRT_SECURE_NO_WARNINGS silences (a _s twin exists),
# the POSIX names _CRT_NONSTDC_NO_DEPRECATE silences, and what Winsock and the SDK deprecate.
C4996 = {
    # CRT "unsafe" (use the _s twin or snprintf)
    # (swprintf and vswprintf with a count are C's own and not on it; _swprintf is.)
    "sprintf", "vsprintf", "_swprintf", "_vswprintf", "_snprintf", "_vsnprintf", "_snwprintf",
    "_vsnwprintf", "strcpy", "wcscpy", "strncpy", "wcsncpy", "strcat", "wcscat", "strncat",
    "wcsncat", "sscanf", "swscanf", "scanf", "wscanf", "fscanf", "fwscanf", "vsscanf",
    "vscanf", "vfscanf", "fopen", "_wfopen", "freopen", "_wfreopen", "getenv", "_wgetenv",
    "strtok", "wcstok", "_tcstok", "gets", "tmpnam", "_wtmpnam", "tmpfile", "ctime",
    "_wctime", "localtime", "gmtime", "asctime", "_wasctime", "strerror", "_wcserror",
    "mbstowcs", "wcstombs", "wctomb", "wcrtomb", "mbsrtowcs",
    "wcsrtombs", "_itoa", "_ltoa", "_ultoa", "_i64toa", "_ui64toa", "_itow", "_ltow",
    "_ecvt", "_fcvt", "_gcvt", "_strlwr", "_strupr", "_wcslwr", "_wcsupr",
    "_splitpath", "_wsplitpath", "_makepath", "_sopen", "_open", "_wopen", "_creat",
    "strerror", "setbuf", "_mktemp", "_wmktemp", "_getws", "asctime",
    # POSIX names (C4996: "The POSIX name for this item is deprecated")
    "strdup", "wcsdup", "stricmp", "strnicmp", "wcsicmp", "wcsnicmp", "strlwr", "strupr",
    "itoa", "ltoa", "ultoa", "ecvt", "fcvt", "gcvt", "fileno", "unlink", "access", "chmod",
    "getcwd", "chdir", "mkdir", "rmdir", "dup", "dup2", "isatty", "lseek", "putenv",
    "getpid", "umask", "creat", "swab", "strset", "strnset", "strrev", "memccpy", "tempnam",
    "kbhit", "getch", "fdopen",
    # Winsock (_WINSOCK_DEPRECATED_NO_WARNINGS) and the SDK
    "inet_addr", "inet_ntoa", "gethostbyname", "gethostbyaddr", "WSASocketA",
    "WSAAddressToStringA", "WSAStringToAddressA", "WSADuplicateSocketA", "GetVersionExA",
    "GetVersionExW", "GetVersionEx", "WSAAsyncSelect", "WSACancelBlockingCall",
}


def strip_comments_and_strings(text):
    """C source with comments, string and character literals blanked (lines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


CALL = re.compile(r"(?<![\w.>])(" + "|".join(sorted(C4996, key=len, reverse=True)) +
                  r")\s*\(")


def c4996_calls(path):
    """'file:line: NAME (C4996)' for each call of a name on MSVC's list."""
    text = strip_comments_and_strings(open(path, encoding="utf-8", errors="replace").read())
    found = []
    for m in CALL.finditer(text):
        # "->name(" is a member; "x.name(" too (the look-behind covers '.' and '>').
        line = text.count("\n", 0, m.start()) + 1
        found.append(f"{os.path.relpath(path, ROOT)}:{line}: '{m.group(1)}' is deprecated "
                     "in MSVC's CRT (C4996, an error under /WX)")
    return found


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


def check_c4996(paths):
    """The C4996 scan, once per file (its headers of the project included)."""
    problems = []
    for path in sorted(paths):
        found = c4996_calls(path)
        if found:
            problems.append(f"--- MSVC C4996 list: {os.path.relpath(path, ROOT)}\n" +
                            "\n".join(found))
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
    headers = {os.path.join(d, f) for top in CHECKED
               for d, _, fs in os.walk(os.path.join(ROOT, top)) for f in fs if f.endswith(".h")}
    problems += check_c4996({e["file"] for e in entries} | headers)
    for p in problems:
        print(p)
    files = len({e["file"] for e in entries})
    print(f"msvc-check: {files} files ({len(entries)} compilations) x 2 dialects and the "
          f"C4996 list: "
          f"{len(problems)} with findings")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
