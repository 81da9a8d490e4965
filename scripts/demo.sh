#!/usr/bin/env bash
# Builds clawcage, shows what this kernel supports, and runs a command in a
# sandbox under the default policy: it can read the system, write only its
# workspace, and reach no network.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc >/dev/null; }
cargo build --release -q
bin=target/release/clawcage
echo "== clawcage doctor"
"$bin" doctor || true
ws=$(mktemp -d /tmp/clawcage-demo.XXXXXX)
echo "hello from the workspace" > "$ws/hello.txt"
echo
echo "== clawcage run --workspace $ws -- sh -c '...'"
"$bin" run --workspace "$ws" -- /bin/sh -c '
  echo "whoami:      $(id -un) (uid $(id -u)), pid $$, hostname $(hostname)"
  echo "workspace:   $(cat hello.txt)"
  echo "write here:  $(echo ok > written.txt && echo allowed)"
  echo "write /etc:  $( (echo x > /etc/x) 2>/dev/null && echo ALLOWED || echo refused)"
  echo "/etc/shadow: $(cat /etc/shadow >/dev/null 2>&1 && echo READABLE || echo unreadable)"
  echo "/root:       $(ls /root >/dev/null 2>&1 && echo VISIBLE || echo absent)"
  echo "processes:   $(ls /proc | grep -c "^[0-9]") visible"
  echo "network:     $(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " | tr "\n" " ")"
  grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status | tr "\n" " "; echo'
echo "exit status: $?; on the host: $(cat "$ws/written.txt")"
rm -rf "$ws"
