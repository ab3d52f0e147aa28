#!/usr/bin/env bash
# Runs every fuzz target for a fixed time and prints one line of figures per target.
#
#   fuzz/run.sh [SECONDS_PER_TARGET [PARALLEL [TARGET...]]]     (default 600 s, 2 at a time, all)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain. Makes the seed corpora
# first when missing (fuzz/make-seeds.sh). New inputs go to fuzz/corpus/<target>, crashes to
# fuzz/artifacts/<target>, logs to fuzz/logs/<target>.log. Exits 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
parallel=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
all=(idx npy mnist_json checkpoint delta_restore torch_import suite results)
targets=("${@:-${all[@]}}")
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz" >&2
  exit 2
fi
[ -f seeds/source.safetensors ] || bash make-seeds.sh
# Debug assertions on: an arithmetic overflow is a crash, not a wrapped number.
cargo +nightly fuzz build --debug-assertions
mkdir -p logs
for t in "${targets[@]}"; do mkdir -p "artifacts/$t"; done
run_one() {
  local t=$1 secs=$2
  mkdir -p "corpus/$t"
  # The built binary itself, so that edits made while it runs cannot trigger a rebuild. The rss
  # limit is above what any seed needs: an allocation past it is a finding.
  "target/$(rustc -vV | sed -n 's/^host: //p')/release/$t" "corpus/$t" "seeds/$t" \
    -artifact_prefix="artifacts/$t/" -max_total_time="$secs" -rss_limit_mb=3072 -malloc_limit_mb=1024 \
    -timeout=30 -print_final_stats=1 >"logs/$t.log" 2>&1 || true
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P "$parallel" -I{} bash -c 'run_one {} '"$secs"
status=0
printf '%-14s %12s %8s %8s %8s\n' target executions exec/s corpus crashes
for t in "${targets[@]}"; do
  log=logs/$t.log
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  corpus=$(find "corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  [ "$crashes" -eq 0 ] || status=1
  printf '%-14s %12s %8s %8s %8s\n' "$t" "${execs:-0}" "${rate:-0}" "$corpus" "$crashes"
done
exit $status
