#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 30) from its seed
# corpus in fuzz/corpus/<target>; new inputs go to a scratch copy, never into the repository.
# Fails on the first crash, panic, 5xx (http_bodies) or timeout: libFuzzer prints the input,
# and keeps it in fuzz/artifacts/<target>/ to add as a regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo fuzz build --sanitizer none -O
for target in ${FUZZ_TARGETS:-$(cargo fuzz list)}; do
  echo "== fuzz $target (${seconds}s)"
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! cargo fuzz run --sanitizer none -O "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed"
    exit 1
  fi
  grep -E '^(Done|stat::peak_rss_mb)' "$log" || true
done
