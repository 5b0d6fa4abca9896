#!/usr/bin/env bash
# Grow a shipped mini ground truth by complete prefixes of its sample (issues 11, 12): for K = FROM, FROM+STEP, ...
# up to TO, `make truth TRUTH=<name> TRUTH_ARCHS=sample:K`, then commit closekit/assets/<name> (only that path), so
# every commit ships a prefix finished with all its seeds. Resumable: rerun it; finished (arch, seed) rows are kept.
# Usage: scripts/grow_truth.sh mini-nb301 FROM TO [STEP=10] [WORKERS=1]
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 from=$2 to=$3 step=${4:-10} workers=${5:-1}
dir=closekit/assets/${name//-/_}
for ((k = from; k <= to; k += step)); do
  [ "$(git show "HEAD:$dir/truth.csv" 2>/dev/null | wc -l)" -gt "$k" ] && continue   # sample:k already committed
  make -s truth TRUTH="$name" TRUTH_ARCHS="sample:$k" TRUTH_WORKERS="$workers" > /dev/null
  for try in 1 2 3 4 5 6; do      # the index may be locked by another git command for a moment
    git add "$dir" && git commit -q -m "$name: sample:$k complete ($(($(wc -l < "$dir/results.csv") - 1)) rows)" \
      -- "$dir" && break
    sleep 10
  done
  echo "$(date +%T) $name sample:$k committed"
done
