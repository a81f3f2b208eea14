#!/usr/bin/env bash
# The release archive as a user gets it (scripts/test.sh runs this after cpack):
#   check-package.sh [BUILD-DIR]     default build/mingw-wine; the zip is BUILD-DIR/package/
#   CHECK_PACKAGE_WINES="8 10"       the Wines the example runs under (default 8; 10 needs
#                                    scripts/wine10.sh up, which scripts/test.sh has done)
#
# Unpacks iocp-<version>-win64.zip into a fresh temporary folder, checks that it holds what
# cmake/install.cmake promises, that its programs say its version, then builds examples/echo
# against the unpacked tree alone (find_package(iocp CONFIG REQUIRED) with CMAKE_PREFIX_PATH
# there; the MinGW GCC toolchain) twice, with the static library and with iocp.dll, and runs
# each under Wine: a real echo through the engine, and the line naming the library it ran
# with. Last, the pkg-config files: the example compiled and linked with `pkg-config --cflags
# --libs` of iocp-static.pc and of iocp.pc (the DLL), and the imports checked.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
build=${1:-build/mingw-wine}
source scripts/setup.sh

fail() {
    echo "check-package: FAILED: $*" >&2
    exit 1
}

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[ -n "$version" ] || fail "no project version in $build/CMakeCache.txt (configure $build first)"
name=iocp-$version-win64
zip=$project/$build/package/$name.zip
[ -f "$zip" ] || fail "no $zip: run cpack in $build first (scripts/test.sh does)"

# A fresh folder inside the project: the Wine 10 tree sees the project's folder only.
mkdir -p build
work=$(mktemp -d "$project/build/package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && cmake -E tar xf "$zip")
root=$work/$name
[ -d "$root" ] || fail "$name.zip does not unpack into a folder $name/"

for f in bin/iocp-service.exe bin/iocp-client.exe bin/iocp.dll \
    include/iocp/iocp.h include/iocp/framing.h include/iocp/export.h include/iocp/version.h \
    lib/libiocp.a lib/libiocp.dll.a \
    lib/cmake/iocp/iocpConfig.cmake lib/cmake/iocp/iocpConfigVersion.cmake \
    lib/cmake/iocp/iocpTargets.cmake lib/pkgconfig/iocp.pc lib/pkgconfig/iocp-static.pc \
    share/doc/iocp/LICENSE share/doc/iocp/README.md share/doc/iocp/service.md \
    share/doc/iocp/examples/echo/CMakeLists.txt; do
    [ -f "$root/$f" ] || fail "$name.zip has no $f"
done
# Nothing of the build or the tests in it.
extra=$(cd "$root" && find . -type f | grep -Ev '^\./(bin|include/iocp|lib|share/doc/iocp)/' || true)
[ -z "$extra" ] || fail "$name.zip holds files outside the layout: $extra"

# The Event Log message table iocp-service registers itself as (EventMessageFile), and the
# VERSIONINFO of each binary: resources inside the files.
# (Whole outputs into variables: grep -q ending a pipe early would fail it under pipefail.)
resources=$(x86_64-w64-mingw32-windres -i "$root/bin/iocp-service.exe" -O rc)
grep -q 'RT_MESSAGETABLE' <<<"$resources" ||
    fail "bin/iocp-service.exe has no message table (service/messages.mc)"
for binary in iocp-service.exe iocp-client.exe iocp.dll; do
    resources=$(x86_64-w64-mingw32-windres -i "$root/bin/$binary" -O rc)
    grep -q "VALUE \"FileVersion\", \"$version\"" <<<"$resources" ||
        fail "bin/$binary has no VERSIONINFO with FileVersion $version"
done
for program in iocp-service iocp-client; do
    said=$(cmake/wine-run.sh "$root/bin/$program.exe" --version | tr -d '\r')
    [ "$said" = "$program $version" ] || fail "$program --version says '$said', not '$program $version'"
done

for kind in static dll; do
    shared=OFF
    [ $kind = dll ] && shared=ON
    dir=$work/echo-$kind
    cmake -S examples/echo -B "$dir" -G Ninja --toolchain "$project/cmake/mingw-gcc.cmake" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$root" -DIOCP_SHARED=$shared \
        -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$work/configure-$kind.log" ||
        { cat "$work/configure-$kind.log"; fail "examples/echo ($kind) does not configure against $name"; }
    found=$(sed -n 's/^iocp_DIR:PATH=//p' "$dir/CMakeCache.txt")
    [ "$found" = "$root/lib/cmake/iocp" ] || fail "find_package(iocp) took '$found', not the unpacked archive"
    cmake --build "$dir" >"$work/build-$kind.log" ||
        { cat "$work/build-$kind.log"; fail "examples/echo ($kind) does not build against $name"; }
    want="iocp-echo-example: echoed 4096 bytes through iocp $version ($kind)"
    for wine in ${CHECK_PACKAGE_WINES:-8}; do
        wine_path=$PATH
        [ "$wine" = 10 ] && wine_path=$project/cmake/wine10-bin:$PATH
        said=$(PATH=$wine_path cmake/wine-run.sh "$dir/iocp-echo-example.exe" | tr -d '\r')
        [ "$said" = "$want" ] || fail "examples/echo ($kind) under Wine $wine said '$said', not '$want'"
        echo "check-package: $kind, Wine $wine: $said"
    done
done

# pkg-config, as MSYS2 users would use it (pkgconf finds the prefix from the .pc's place).
for pc in iocp-static iocp; do
    flags=$(PKG_CONFIG_LIBDIR="$root/lib/pkgconfig" pkg-config --cflags --libs $pc)
    # shellcheck disable=SC2086 # the flags are words
    x86_64-w64-mingw32-gcc -Werror -o "$work/echo-$pc.exe" examples/echo/echo_example.c $flags ||
        fail "examples/echo does not build with pkg-config --cflags --libs $pc: $flags"
    imports=$(x86_64-w64-mingw32-objdump -p "$work/echo-$pc.exe")
    imports=$(grep -ci 'DLL Name: iocp.dll' <<<"$imports" || true)
    if [ $pc = iocp ]; then
        [ "$imports" = 1 ] || fail "$pc.pc does not link iocp.dll"
    else
        [ "$imports" = 0 ] || fail "$pc.pc links iocp.dll, not the static library"
    fi
done
echo "check-package: $name.zip: layout, --version, examples/echo (static and dll) and pkg-config: ok"
