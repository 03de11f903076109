#!/usr/bin/env bash
# cargo-fuzz (libFuzzer + AddressSanitizer) on every wire parser of
# ringlet-proto: join, leave, relay (+ the `from` rewrite), ids, and what
# clients parse from the server. Each target runs SECONDS (default 60).
#
#   bench/fuzz.sh [SECONDS] [TARGET...]
#
# The targets live in crates/proto/fuzz (a project of its own, outside the
# workspace). cargo-fuzz is installed once into ~/.cache/ringlet-tools.
# Only a stable toolchain is assumed: RUSTC_BOOTSTRAP=1 lets it take the
# `-Z sanitizer` flags cargo-fuzz passes. Seeds come from fuzz/seeds, the
# growing corpus stays in fuzz/corpus (ignored by git); a crash leaves its
# input in fuzz/artifacts/<target>/ and fails the script.
# The short, always-run version is `cargo test -p ringlet-proto --test props`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
secs=${1:-60}; shift || true
tools="$HOME/.cache/ringlet-tools"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --version 0.13.2 --locked --root "$tools" >&2
fi
export PATH="$tools/bin:$PATH" RUSTC_BOOTSTRAP=1
cd crates/proto/fuzz
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(join leave relay ids client)
target_dir="$CARGO_TARGET_DIR/fuzz"
cargo fuzz build --target-dir "$target_dir" >&2
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  cp -n "seeds/$t"/* "corpus/$t"/ 2>/dev/null || true
  echo "# $t: ${secs}s" >&2
  log="$target_dir/$t.log"
  if cargo fuzz run --target-dir "$target_dir" "$t" "corpus/$t" -- \
      -max_total_time="$secs" -max_len=8192 -dict=json.dict -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    echo "{\"target\":\"$t\",\"seconds\":$secs,\"runs\":$runs,\"coverage\":$cov,\"corpus\":$(ls "corpus/$t" | wc -l),\"crashes\":0}"
  else
    failed=1
    echo "{\"target\":\"$t\",\"seconds\":$secs,\"crashes\":1,\"log\":\"$log\",\"artifacts\":\"crates/proto/fuzz/artifacts/$t\"}"
    grep -m3 -E 'panicked|ERROR' "$log" >&2 || true
  fi
done
exit $failed
