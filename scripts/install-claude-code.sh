#!/bin/sh
# Install the Claude Code CLI into <repo>/.node (never globally) and print the
# path of its `claude` binary. The version is the one the end-to-end tests were
# verified with, pinned in scripts/claude-code-version (one line); set
# CLAUDE_CODE_VERSION to install another (`latest` for the newest release; see
# scripts/check-latest-claude-code before bumping the pin) and
# AUTORUN_NODE_PREFIX to install elsewhere. Idempotent: with that version
# already installed it only prints the path.
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
root=$(dirname -- "$here")
prefix=${AUTORUN_NODE_PREFIX:-"$root/.node"}
pinned=$(tr -d ' \t\r\n' < "$here/claude-code-version")
version=${CLAUDE_CODE_VERSION:-$pinned}
bin="$prefix/node_modules/.bin/claude"
node_major=22 # Claude Code's package.json: "engines": {"node": ">=22.0.0"}

if ! command -v npm >/dev/null 2>&1; then
    echo "install-claude-code: npm not found; install Node.js >= $node_major first" >&2
    echo "  macOS: brew install node    Debian/Ubuntu: https://nodejs.org/en/download (apt's nodejs may be older)" >&2
    exit 1
fi
have_node=$(node --version 2>/dev/null | sed 's/^v//; s/\..*//') || have_node=
if [ -n "$have_node" ] && [ "$have_node" -lt "$node_major" ] 2>/dev/null; then
    # npm only warns (the CLI itself is a native binary), so go on, but say so.
    echo "install-claude-code: warning: Claude Code asks for Node.js >= $node_major; found $(node --version)" >&2
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

echo "install-claude-code: installing @anthropic-ai/claude-code@$version into $prefix" >&2
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$version" >&2
if [ ! -x "$bin" ]; then
    echo "install-claude-code: npm finished but $bin is missing" >&2
    exit 1
fi
echo "$bin"
