#!/usr/bin/env bash
# Queues a suite's grid on Slurm as N array tasks and the merge that follows them (docs/scaling.md):
#
#   deploy/slurm/submit.sh SUITE N [sbatch options for both jobs, e.g. --partition=cpu --time=2:00:00]
#
# Prints the two job ids. GRAFT, GRAFT_RESULTS_DIR, GRAFT_RUN_ARGS and GRAFT_DATA_DIR are passed
# on from the environment (see graft-array.sbatch).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 SUITE N [sbatch options]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
export GRAFT_SUITE=$1 GRAFT_SHARDS=$2
shift 2
case $GRAFT_SHARDS in '' | *[!0-9]* | 0) echo "$0: N must be a whole number of shards, at least 1" >&2; exit 2 ;; esac
[ -f "$GRAFT_SUITE" ] || { echo "$0: no suite file $GRAFT_SUITE" >&2; exit 2; }
array=$(sbatch --parsable --array="0-$((GRAFT_SHARDS - 1))" "$@" "$here/graft-array.sbatch")
array=${array%%;*}  # --parsable prints id or id;cluster
# A failed shard cancels the merge (instead of leaving it pending forever); resubmit that index
# (--array=<i>) and queue the merge again.
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes "$@" "$here/graft-merge.sbatch")
merge=${merge%%;*}
echo "graft: array job $array ($GRAFT_SHARDS shards of $GRAFT_SUITE), merge job $merge"
