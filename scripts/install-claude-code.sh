#!/bin/sh
# Install the Claude Code CLI into <repo>/.node (never globally) and print the
# path of its `claude` binary. Idempotent: a second run with the binary present
# does nothing but print the path. Set CLAUDE_CODE_VERSION to pin a version
# (default: latest); set AUTORUN_NODE_PREFIX to install elsewhere.
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
root=$(dirname -- "$here")
prefix=${AUTORUN_NODE_PREFIX:-"$root/.node"}
version=${CLAUDE_CODE_VERSION:-latest}
bin="$prefix/node_modules/.bin/claude"

if ! command -v npm >/dev/null 2>&1; then
    echo "install-claude-code: npm not found; install Node.js >= 18 first" >&2
    echo "  macOS: brew install node    Debian/Ubuntu: sudo apt-get install nodejs npm" >&2
    exit 1
fi

if [ -x "$bin" ] && [ "$version" = latest ] && [ -z "${CLAUDE_CODE_REINSTALL:-}" ]; then
    echo "$bin"
    exit 0
fi
if [ -x "$bin" ] && [ "$version" != latest ]; then
    have=$("$bin" --version 2>/dev/null | awk '{print $1}') || have=
    if [ "$have" = "$version" ]; then
        echo "$bin"
        exit 0
    fi
fi

mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$version" >&2
if [ ! -x "$bin" ]; then
    echo "install-claude-code: npm finished but $bin is missing" >&2
    exit 1
fi
echo "$bin"
