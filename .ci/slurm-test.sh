#!/usr/bin/env bash
# A real Slurm run of a suite's grid: installs Slurm and MUNGE (Debian), starts a one-node cluster
# on this machine (its own munged, slurmctld and slurmd, every file under a temporary folder),
# submits harness/experiments/scaling/tiny.toml with deploy/slurm/submit.sh as a job array and
# its dependent merge job, and checks the merged results against one `graft run` of the suite:
# the same run keys, each once, with the same test accuracies and source.
#
# Where the cluster cannot be started (not root, no apt-get, a daemon that will not run) it says
# why on a line starting `slurm test: SKIPPED:` and exits 0; a real mismatch exits 1.
#
# GRAFT=path/to/graft uses that binary; by default it builds the debug one (a no-op after
# `cargo test`). SLURM_TEST_SHARDS sets the array's size (default 3); SLURM_TEST_KEEP=1 keeps the
# temporary folder (logs, results) and says where it is.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
suite=$repo/harness/experiments/scaling/tiny.toml
shards=${SLURM_TEST_SHARDS:-3}
started=$SECONDS

say() { echo "slurm test: $*"; }
skip() {
  say "SKIPPED: $*"
  exit 0
}
fail() {
  say "FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || skip "needs root (to install Slurm and run its daemons as SlurmUser=root); run it as root or in a container"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null || ! command -v jq >/dev/null; then
  command -v apt-get >/dev/null || skip "Slurm is not installed and apt-get is not available to install it"
  say "installing slurm-wlm, munge and jq"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge jq >/dev/null; }; then
    skip "apt-get install slurm-wlm munge jq failed"
  fi
fi

if [ -z "${GRAFT:-}" ]; then
  cargo build -q -p graft-harness || fail "cannot build graft"
  GRAFT=${CARGO_TARGET_DIR:-target}/debug/graft
fi
case $GRAFT in /*) ;; *) GRAFT=$repo/$GRAFT ;; esac
[ -x "$GRAFT" ] || fail "no graft binary at $GRAFT"
export GRAFT

tmp=$(mktemp -d /tmp/graft-slurm.XXXXXX)
pids=()
cleanup() {
  # Only what this script started, by process id.
  [ -n "${array:-}" ] && scancel "$array" "${merge:-}" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ "${SLURM_TEST_KEEP:-}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# MUNGE: a fresh key, our own socket (a system munged, if any, is left alone).
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/work"
chmod 755 "$tmp" "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$tmp/munge/munge.key"
munged --foreground --force --key-file="$tmp/munge/munge.key" --socket="$tmp/munge/munge.socket" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/munged.seed" \
  >"$tmp/munge/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 20); do
  munge -S "$tmp/munge/munge.socket" -n 2>/dev/null | unmunge -S "$tmp/munge/munge.socket" >/dev/null 2>&1 && break
  sleep 0.5
done
if ! munge -S "$tmp/munge/munge.socket" -n 2>/dev/null | unmunge -S "$tmp/munge/munge.socket" >/dev/null 2>&1; then
  tail -n 20 "$tmp/munge/munged.log" "$tmp/munge/munged.out" 2>/dev/null
  skip "munged does not start or does not answer (its log is above)"
fi

host=$(hostname -s)
export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=graftci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.socket
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=graft Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
ctld=$!
slurmd -D -f "$SLURM_CONF" >"$tmp/slurmd.out" 2>&1 &
slurmd=$!
pids+=("$ctld" "$slurmd")
state=
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1)
  [ "$state" = idle ] && break
  kill -0 "$ctld" 2>/dev/null && kill -0 "$slurmd" 2>/dev/null || break
  sleep 1
done
if [ "$state" != idle ]; then
  for d in slurmd slurmctld; do
    # The log file, or what the daemon printed before it could open one.
    f=$tmp/$d.log
    [ -s "$f" ] || f=$tmp/$d.out
    [ -s "$f" ] && { echo "--- $d: the last lines of $(basename "$f")"; tail -n 12 "$f"; }
  done
  skip "the one-node cluster did not come up (node state '${state:-none}'; the daemons' logs are above)"
fi
say "cluster up on $host ($(nproc) CPUs, Slurm $(sinfo -V | awk '{print $2}')) after $((SECONDS - started))s"

# The grid as an array of $shards tasks and the merge after them, submitted as a user would.
cd "$tmp/work"
export GRAFT_RESULTS_DIR=$tmp/work/results/slurm GRAFT_DATA_DIR=$tmp/work/data
submitted=$("$repo/deploy/slurm/submit.sh" "$suite" "$shards") || fail "submit.sh failed"
echo "$submitted"
array=$(echo "$submitted" | sed -n 's/.*array job \([0-9]*\).*/\1/p')
merge=$(echo "$submitted" | sed -n 's/.*merge job \([0-9]*\).*/\1/p')
[ -n "$array" ] && [ -n "$merge" ] || fail "cannot read the job ids from: $submitted"

job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 | sort | uniq -c | xargs; }
deadline=$((SECONDS + 600))
while squeue -h -j "$array,$merge" 2>/dev/null | grep -q .; do
  [ $SECONDS -lt $deadline ] || fail "the jobs did not finish in 10 minutes: $(squeue -h -j "$array,$merge")"
  sleep 2
done
logs() { for f in "$tmp"/work/slurm-*.out; do echo "--- $(basename "$f")"; tail -n 25 "$f"; done; }
array_state=$(job_state "$array")
merge_state=$(job_state "$merge")
say "array job $array: $array_state; merge job $merge: $merge_state"
[ "$array_state" = "$shards COMPLETED" ] || { logs; fail "not every array task completed"; }
[ "$merge_state" = "1 COMPLETED" ] || { logs; fail "the merge job did not complete"; }
grep -q "nothing to run" "$tmp"/work/slurm-graft-merge-"$merge".out ||
  { logs; fail "the merge job's graft run found runs missing from the merged shards"; }
grep -h '^merged\|^graft shard\|runs done' "$tmp"/work/slurm-*.out | sed 's/^/  /'
slurm_done=$((SECONDS - started))

# The same suite in one process, elsewhere.
"$GRAFT" run "$suite" --results "$tmp/work/results/single/all.jsonl" --no-progress -q >"$tmp/single.out" 2>&1 ||
  { tail -n 20 "$tmp/single.out"; fail "the single-process graft run failed"; }

merged=$GRAFT_RESULTS_DIR/merged.jsonl
single=$tmp/work/results/single/all.jsonl
runs() { jq -r '[.key, .test_accuracy, .source_hash] | @tsv' "$1" | sort; }
n_single=$(grep -c . "$single")
n_merged=$(grep -c . "$merged")
n_shards=$(cat "$GRAFT_RESULTS_DIR"/shard-*.jsonl | grep -c .)
dups=$(jq -r .key "$merged" | sort | uniq -d)
[ -z "$dups" ] || fail "keys twice in the merged file: $dups"
[ "$n_merged" = "$n_shards" ] || fail "the shards hold $n_shards runs but the merged file $n_merged"
if ! diff <(runs "$single") <(runs "$merged") >"$tmp/diff"; then
  cat "$tmp/diff"
  fail "the merged shards differ from one graft run (< single, > merged: key, test accuracy, source hash)"
fi
[ -s "$GRAFT_RESULTS_DIR/merged.md" ] || fail "the merge job wrote no report"
say "PASSED: $n_merged runs from $shards Slurm array tasks merged, each once, with one graft run's keys, test accuracies and source (Slurm part ${slurm_done}s, all $((SECONDS - started))s)"
