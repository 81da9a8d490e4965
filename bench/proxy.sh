#!/usr/bin/env bash
# Egress proxy overhead on loopback, in one run: small requests over
# keep-alive and over new connections, and bulk downloads (plain HTTP and a
# CONNECT tunnel; 256 MiB x 5 rounds interleaved, medians, plus CPU s/GiB), direct
# to a local origin and through the real proxy code (crates/egress), with
# ratios and PASS/FAIL against the goals (<= 0.5 ms added per request,
# >= 80% of direct throughput), and the CPU the proxy's own thread spends per GiB.
# BENCH_REQUESTS, BENCH_BYTES and BENCH_ROUNDS override; BENCH_ONLY=connect runs
# the tunnel alone after one direct round (for perf record).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p clawcage-egress --example proxy_bench
exec target/release/examples/proxy_bench
