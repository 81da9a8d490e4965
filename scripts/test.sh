#!/usr/bin/env bash
# Sets up and runs every test of clawcage on a fresh Debian machine (root).
# Installs what the tests need, checks formatting and lints, then runs the
# whole suite with cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg_cmd in "gcc:gcc" "python3:/usr/bin/python3" "setpriv:util-linux" "strace:strace" "script:bsdutils" "ps:procps" "curl:curl"; do
  cmd=${pkg_cmd%%:*}; pkg=${pkg_cmd##*:}
  [ "$pkg" = "/usr/bin/python3" ] && { [ -x /usr/bin/python3 ] || need+=(python3); continue; }
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The web UI test (crates/server/tests/web.rs) drives Debian's Chromium with playwright-core.
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing: chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
echo "== npm ci (tests/web)"
(cd tests/web && npm ci --no-audit --no-fund --silent)
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked -q
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== cargo nextest"
profile=default
[ -n "${CI:-}" ] && profile=ci
cargo nextest run --workspace --profile "$profile"
