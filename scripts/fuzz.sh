#!/usr/bin/env bash
# Native checks of the framing module and of the TLS ClientHello reader (plain C, so both
# build on Linux too), into build/native-fuzz:
#   (a) tests/test_framing.c built with gcc and with clang, -fsanitize=address,undefined, and
#       every case run;
#   (b) the libFuzzer target tests/fuzz/fuzz_framing.c run for FUZZ_SECONDS (default 60) with a
#       fixed seed, on a copy of the committed seed corpus (new inputs never land in it);
#   (c) every file in tests/fuzz/regressions/ replayed through the fuzzer binary.
# A crash input the fuzzer finds is written to build/native-fuzz/crashes/: fix the bug, then
# copy the input to tests/fuzz/regressions/ so it is replayed from then on.
# The same three steps for iocp/src/tls_hello.c: tests/test_tls_hello.c, the target
# tests/fuzz/fuzz_tls_hello.c on tests/fuzz/tls_hello_corpus (a third of FUZZ_SECONDS; the
# framing target gets the rest, so the total stays FUZZ_SECONDS), and
# tests/fuzz/tls_hello_regressions/ replayed (crashes in build/native-fuzz/crashes-tls-hello/).
# Installs clang and libclang-rt-14-dev when missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# libFuzzer and the sanitizer runtimes come with Debian's libclang-rt package.
fuzz_probe() {
    echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)
          { (void)d; (void)n; return 0; }' >"$out/probe.c"
    clang -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" >/dev/null 2>&1
}
out=build/native-fuzz
mkdir -p "$out"
if ! fuzz_probe; then
    echo "fuzz: installing libclang-rt-14-dev (libFuzzer)"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends libclang-rt-14-dev >/dev/null
    fuzz_probe || { echo "fuzz: clang -fsanitize=fuzzer still does not link" >&2; exit 1; }
fi

warn=(-std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Werror)
san=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)
# The harness uses clock_gettime/nanosleep on Linux: POSIX, not in strict C11.
inc=(-D_POSIX_C_SOURCE=200809L -Iiocp/include -Itests)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== fuzz: unit tests, native, ASan+UBSan (gcc and clang)"
cases=""
for cc in gcc clang; do
    "$cc" "${warn[@]}" "${san[@]}" "${inc[@]}" tests/test_framing.c tests/harness.c \
        iocp/src/framing.c -o "$out/test_framing_$cc"
    "$out/test_framing_$cc" >"$out/test_framing_$cc.log" 2>&1 || {
        cat "$out/test_framing_$cc.log"
        echo "fuzz: test_framing ($cc) failed" >&2
        exit 1
    }
    tail -n 1 "$out/test_framing_$cc.log"
    cases=$(tail -n 1 "$out/test_framing_$cc.log" | cut -d' ' -f1)
done

echo "== fuzz: build the libFuzzer target"
clang "${warn[@]}" "${san[@]}" -fsanitize=fuzzer -Iiocp/include tests/fuzz/fuzz_framing.c iocp/src/framing.c -o "$out/fuzz_framing"

echo "== fuzz: replay tests/fuzz/regressions"
mapfile -t regressions < <(find tests/fuzz/regressions -type f ! -name README.md | sort)
if [ ${#regressions[@]} -gt 0 ]; then
    "$out/fuzz_framing" "${regressions[@]}" >"$out/regressions.log" 2>&1 || {
        tail -n 40 "$out/regressions.log"
        echo "fuzz: a regression input fails again" >&2
        exit 1
    }
fi
echo "replayed ${#regressions[@]} regression inputs"

total_seconds=${FUZZ_SECONDS:-60}
hello_seconds=$((total_seconds / 3))
[ "$hello_seconds" -ge 1 ] || hello_seconds=1
seconds=$((total_seconds - hello_seconds))
[ "$seconds" -ge 1 ] || seconds=1

echo "== fuzz: the TLS ClientHello reader: unit tests (gcc, clang), regressions, ${hello_seconds}s fuzz"
hello_cases=""
for cc in gcc clang; do
    "$cc" "${warn[@]}" "${san[@]}" "${inc[@]}" -Iiocp/src tests/test_tls_hello.c tests/harness.c \
        iocp/src/tls_hello.c -o "$out/test_tls_hello_$cc"
    "$out/test_tls_hello_$cc" >"$out/test_tls_hello_$cc.log" 2>&1 || {
        cat "$out/test_tls_hello_$cc.log"
        echo "fuzz: test_tls_hello ($cc) failed" >&2
        exit 1
    }
    hello_cases=$(tail -n 1 "$out/test_tls_hello_$cc.log" | cut -d' ' -f1)
done
clang "${warn[@]}" "${san[@]}" -fsanitize=fuzzer -Iiocp/src tests/fuzz/fuzz_tls_hello.c \
    iocp/src/tls_hello.c -o "$out/fuzz_tls_hello"
mapfile -t hello_regressions < <(find tests/fuzz/tls_hello_regressions -type f ! -name README.md | sort)
if [ ${#hello_regressions[@]} -gt 0 ]; then
    "$out/fuzz_tls_hello" "${hello_regressions[@]}" >"$out/tls_hello_regressions.log" 2>&1 || {
        tail -n 40 "$out/tls_hello_regressions.log"
        echo "fuzz: a tls_hello regression input fails again" >&2
        exit 1
    }
fi
rm -rf "$out/corpus-tls-hello" "$out/crashes-tls-hello"
mkdir -p "$out/corpus-tls-hello" "$out/crashes-tls-hello"
cp tests/fuzz/tls_hello_corpus/* "$out/corpus-tls-hello/"
hello_status=0
"$out/fuzz_tls_hello" -seed=1 -max_total_time="$hello_seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/crashes-tls-hello/" "$out/corpus-tls-hello" \
    >"$out/fuzz-tls-hello.log" 2>&1 || hello_status=$?
if [ "$hello_status" -ne 0 ] || [ -n "$(ls -A "$out/crashes-tls-hello")" ]; then
    tail -n 60 "$out/fuzz-tls-hello.log"
    echo "fuzz: fuzz_tls_hello FAILED (exit $hello_status); crash inputs:" \
        "$(ls "$out/crashes-tls-hello" | tr '\n' ' ')" >&2
    echo "fuzz: keep each one in tests/fuzz/tls_hello_regressions/ once fixed" >&2
    exit 1
fi
hello_runs=$(grep -E '^stat::number_of_executed_units' "$out/fuzz-tls-hello.log" | sed 's/^stat:://')
echo "tls_hello: $hello_cases cases (gcc, clang), ${#hello_regressions[@]} regressions," \
    "${hello_seconds}s fuzz: $hello_runs"

echo "== fuzz: fuzz_framing for ${seconds}s (seed 1)"
rm -rf "$out/corpus" "$out/crashes"
mkdir -p "$out/corpus" "$out/crashes"
cp tests/fuzz/corpus/* "$out/corpus/"
status=0
"$out/fuzz_framing" -seed=1 -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/" "$out/corpus" >"$out/fuzz.log" 2>&1 || status=$?
grep -E '^#[0-9]+.*(INITED|DONE)' "$out/fuzz.log" | tail -n 2 || true
stats=$(grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$out/fuzz.log" |
    sed 's/^stat:://' | tr '\n' ' ')
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$out/fuzz.log" | tail -n 1 || true)
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$out/crashes")" ]; then
    tail -n 60 "$out/fuzz.log"
    echo "fuzz: FAILED (exit $status); crash inputs: $(ls "$out/crashes" | tr '\n' ' ')" >&2
    echo "fuzz: keep each one in tests/fuzz/regressions/ once fixed" >&2
    exit 1
fi

# Source coverage of framing.c reached by the corpus the run grew (report only, not a gate).
lines="n/a"
if command -v llvm-profdata >/dev/null && command -v llvm-cov >/dev/null; then
    clang -std=c11 -g -O1 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
        -Iiocp/include tests/fuzz/fuzz_framing.c iocp/src/framing.c -o "$out/fuzz_framing_cov"
    LLVM_PROFILE_FILE="$out/cov.profraw" "$out/fuzz_framing_cov" -runs=0 "$out/corpus" \
        >"$out/cov.log" 2>&1
    llvm-profdata merge -sparse "$out/cov.profraw" -o "$out/cov.profdata"
    llvm-cov report "$out/fuzz_framing_cov" -instr-profile="$out/cov.profdata" \
        iocp/src/framing.c >"$out/coverage.txt"
    # TOTAL row: regions, missed, cover, functions, missed, executed, lines, missed, cover, ...
    lines=$(awk '/^TOTAL/ {print "lines " $10 ", regions " $4 ", branches " $13}' "$out/coverage.txt")
fi
# The PROXY protocol header parser (iocp/src/proxy_proto.c): its unit tests natively, the
# regression replay, then its own libFuzzer target on a copy of tests/fuzz/corpus_proxy.
echo "== fuzz: test_proxy_proto, native, ASan+UBSan (gcc and clang)"
for cc in gcc clang; do
    "$cc" "${warn[@]}" "${san[@]}" "${inc[@]}" -Iiocp/src tests/test_proxy_proto.c tests/harness.c \
        iocp/src/proxy_proto.c -o "$out/test_proxy_proto_$cc"
    "$out/test_proxy_proto_$cc" >"$out/test_proxy_proto_$cc.log" 2>&1 || {
        cat "$out/test_proxy_proto_$cc.log"
        echo "fuzz: test_proxy_proto ($cc) failed" >&2
        exit 1
    }
    tail -n 1 "$out/test_proxy_proto_$cc.log"
done
clang "${warn[@]}" "${san[@]}" -fsanitize=fuzzer -Iiocp/src tests/fuzz/fuzz_proxy.c \
    iocp/src/proxy_proto.c -o "$out/fuzz_proxy"
mapfile -t proxy_regressions < <(find tests/fuzz/regressions_proxy -type f ! -name README.md | sort)
if [ ${#proxy_regressions[@]} -gt 0 ]; then
    "$out/fuzz_proxy" "${proxy_regressions[@]}" >"$out/regressions_proxy.log" 2>&1 || {
        tail -n 40 "$out/regressions_proxy.log"
        echo "fuzz: a PROXY protocol regression input fails again" >&2
        exit 1
    }
fi
proxy_seconds=${PROXY_FUZZ_SECONDS:-30}
echo "== fuzz: fuzz_proxy for ${proxy_seconds}s (seed 1)"
rm -rf "$out/corpus_proxy" && mkdir -p "$out/corpus_proxy"
cp tests/fuzz/corpus_proxy/* "$out/corpus_proxy/"
status=0
"$out/fuzz_proxy" -seed=1 -max_total_time="$proxy_seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/crashes/" "$out/corpus_proxy" \
    >"$out/fuzz_proxy.log" 2>&1 || status=$?
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$out/crashes")" ]; then
    tail -n 60 "$out/fuzz_proxy.log"
    echo "fuzz: fuzz_proxy FAILED (exit $status); keep each crash input in" \
        "tests/fuzz/regressions_proxy/ once fixed" >&2
    exit 1
fi
proxy_runs=$(grep -E '^stat::number_of_executed_units' "$out/fuzz_proxy.log" | sed 's/^stat:://')

stats=$(echo "$stats" | tr -s ' ')
echo "fuzz: ok: fuzz_proxy ${proxy_seconds}s (${proxy_runs}), ${#proxy_regressions[@]} proxy regressions"
echo "fuzz: ok: test_framing $cases cases (gcc, clang), ${#regressions[@]} regressions," \
    "${seconds}s fuzz: ${stats}${cov}; framing.c coverage: ${lines};" \
    "test_tls_hello $hello_cases cases, ${#hello_regressions[@]} regressions, ${hello_seconds}s fuzz:" \
    "$hello_runs"
