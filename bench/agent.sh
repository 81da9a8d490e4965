#!/usr/bin/env bash
# Agent-loop benchmark: what one tool call costs `clawcage agent` beyond the
# raw exec into a live sandbox. In one run:
#   - raw exec: bench/live times `/bin/true` execs into one live sandbox;
#   - the loop: `clawcage agent` against clawcage-fake-model (on 127.0.0.1,
#     Anthropic wire) replaying N turns that each call `bash true`, and the
#     same with 0 tool calls; per call = (t_N - t_0) / N, which holds the
#     streamed model reply, the helper round trip, the exec, the store rows
#     and the two durable audit records of the call.
# Rounds alternate the two, medians are compared. Goal (the issue): loop
# overhead per tool call (per call - raw exec) <= 3 ms. Exit 0 even when missed.
# The `bash` tool runs `bash -c COMMAND`, so the raw exec it is compared with
# is `bash -c true` (bench/live runs that too); `/bin/true` is shown beside it
# to tell the shell's own start-up from the sandbox's exec. The load average
# is printed with the figures: on a shared machine it moves them.
# Twice: with the state directory on disk (the real cost: two audit records
# per call, each fdatasync'd, plus the store's commits) and on tmpfs
# (/dev/shm: the same code without the disk's sync latency), so the loop's
# own cost and the durability cost are told apart.
#
#   bench/agent.sh            # BENCH_N=100 BENCH_ROUNDS=5 BENCH_K=300
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${BENCH_N:-100} ROUNDS=${BENCH_ROUNDS:-5} K=${BENCH_K:-300}

T=$(mktemp -d /tmp/clawcage-bench-agent.XXXXXX)
trap 'rm -rf "$T"' EXIT
build() { cargo build --release -q "$@" >"$T/build.log" 2>&1 || { cat "$T/build.log" >&2; exit 1; }; }
echo "== building clawcage, clawcage-fake-model and bench/live (release)"
build -p clawcage
build -p clawcage-agent --features testing --bin clawcage-fake-model
[ -f bench/live/Cargo.lock ] || cp Cargo.lock bench/live/Cargo.lock
build --manifest-path bench/live/Cargo.toml --target-dir "$ROOT/target"
CLAWCAGE=$ROOT/target/release/clawcage
FAKE=$ROOT/target/release/clawcage-fake-model
LIVE=$ROOT/target/release/clawcage-bench-live

WS=$T/ws && mkdir "$WS"
echo "== raw exec: $K execs of /bin/true, then of bash -c true, into a live sandbox"
(cd "$WS" && "$LIVE" "$WS" "$K" 0) >"$T/live.out"
(cd "$WS" && "$LIVE" "$WS" "$K" 0 -- bash -c true) >"$T/live-bash.out"

echo "== agent loop: $ROUNDS rounds of 0 and $N tool calls"
python3 - "$CLAWCAGE" "$FAKE" "$T" "$N" "$ROUNDS" "$T/live.out" "$T/live-bash.out" <<'PY'
import os, shutil, subprocess, sys, tempfile, time, statistics
clawcage, fake, tmp, n, rounds, live, live_bash = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
kv = dict(l.strip().split("=", 1) for l in open(live) if "=" in l)
kvb = dict(l.strip().split("=", 1) for l in open(live_bash) if "=" in l)
true_ms = float(kv["live.exec_median_ms"])
exec_ms = float(kvb["live.exec_median_ms"])
def load():
    return open("/proc/loadavg").read().split()[0]

def one(calls, i, state):
    srv = subprocess.Popen([fake, "--tool-calls", str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = srv.stdout.readline().strip()
    ws = f"{tmp}/ws-{calls}-{i}"
    os.mkdir(ws)
    env = dict(os.environ, CLAWCAGE_HOME=state, ANTHROPIC_API_KEY="bench", ANTHROPIC_BASE_URL=url)
    t = time.perf_counter()
    r = subprocess.run([clawcage, "agent", "--model", "anthropic:bench", "--workspace", ws,
                        "--max-turns", str(calls + 5), "bench"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t) * 1e3
    srv.stdin.close(); srv.wait()
    if r.returncode != 0:
        sys.exit(f"clawcage agent failed ({r.returncode}): {r.stderr.decode()}")
    return dt

shm = tempfile.mkdtemp(prefix="clawcage-bench-agent-", dir="/dev/shm")
try:
    for label, state in (("state on disk", f"{tmp}/state"), ("state on tmpfs", f"{shm}/state")):
        one(0, f"warm-{label[9:]}", state); one(3, f"warm3-{label[9:]}", state)
        t0, tn = [], []
        for i in range(rounds):
            t0.append(one(0, f"{label[9:]}-{i}", state)); tn.append(one(n, f"{label[9:]}-{i}", state))
        m0, mn = statistics.median(t0), statistics.median(tn)
        per_call = (mn - m0) / n
        overhead = per_call - exec_ms
        print(f"-- {label} (load average {load()})")
        print(f"agent run, 0 tool calls : median {m0:8.1f} ms  (start-up: task, helper, sandbox, one model call)")
        print(f"agent run, {n} tool calls: median {mn:8.1f} ms")
        print(f"per tool call           : {per_call:8.3f} ms")
        print(f"raw exec bash -c true   : {exec_ms:8.3f} ms median, p90 {float(kvb['live.exec_p90_ms']):.3f} ms (what the tool runs)")
        print(f"raw exec /bin/true      : {true_ms:8.3f} ms median, p90 {float(kv['live.exec_p90_ms']):.3f} ms")
        print(f"loop overhead per call  : {overhead:8.3f} ms  (per call - raw exec of bash -c true)")
        print(f"ratio per call / exec   : {per_call / exec_ms:8.1f}x")
        print(f"goal overhead <= 3 ms   : {'PASS' if overhead <= 3.0 else 'FAIL'}")
finally:
    shutil.rmtree(shm, ignore_errors=True)
PY
