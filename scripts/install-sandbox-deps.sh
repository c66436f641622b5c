#!/usr/bin/env bash
# Sandbox prerequisites for rewardlab: nothing to install.
#
#     scripts/install-sandbox-deps.sh [--require basic|restricted|isolated]
#
# rewardlab's sandbox talks to the kernel directly (namespaces, seccomp, Landlock, cgroups,
# setresuid) through Python's ctypes: no apt package (no bubblewrap, no libseccomp) is needed.
# This script is the set-up step anyway, so that the Makefile/CI has one place to call: it
# checks the kernel features and prints what `rewardlab sandbox doctor` reports. Idempotent.
# It exits 0 even where a feature is missing (the sandbox then runs at the strongest level
# available and doctor says so loudly), unless --require names a level that is not reached.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then
    PY=$(command -v python3 || true)
fi
if [ -z "$PY" ]; then
    echo "install-sandbox-deps: no python found; nothing checked" >&2
    exit 0
fi
echo "install-sandbox-deps: no packages needed (kernel features only)"
for f in /proc/self/ns/pid /proc/self/ns/net /proc/self/ns/mnt; do
    [ -e "$f" ] || echo "install-sandbox-deps: $f missing: no namespaces, 'isolated' unavailable" >&2
done
ARGS=(doctor --no-live)
if [ "${1:-}" = "--require" ] && [ -n "${2:-}" ]; then
    ARGS+=(--require "$2")
    exec "$PY" -c "from rewardlab.cli.sandbox import sandbox_app; sandbox_app()" "${ARGS[@]}"
fi
"$PY" -c "from rewardlab.cli.sandbox import sandbox_app; sandbox_app()" "${ARGS[@]}" || true
exit 0
