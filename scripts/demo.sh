#!/usr/bin/env bash
# The main job, for real: build, start the echo server, send messages with the client (one
# larger than the server's buffer), print what came back, stop the server cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cmake --preset mingw-wine >/dev/null
cmake --build --preset mingw-wine >/dev/null
echo "demo: built build/mingw-wine; the server and client arrive with the engine issue."
