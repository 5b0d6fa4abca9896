#!/usr/bin/env bash
# Mini NB201 recipe study (issue 3): the same 40 sampled architectures (sample:40, sample seed 0), 2 seeds,
# one recipe per directory. Resumable: rerun to continue; finished (arch, seed) rows are kept.
# Usage: bench/recipes/run_study.sh [DIR...]   (default: every recipe below)
set -e
cd "$(dirname "$0")/../.."
declare -A SET=(
  [r0-16px-c8n1-e8]=""                                   # the naive recipe of shared/notes/minibench-probes.md
  [r1-16px-c8n2-e8]="N=2"                                # two cells per stage
  [r2-12px-c8n2-e8-6k]="image_size=12 N=2 train_limit=6000"   # two cells, cheaper: 12x12 and half the images
  [r3-12px-c8n2-e8-3k]="image_size=12 N=2 train_limit=3000"   # r2 on half the images (half the cost)
)
for d in "${@:-r0-16px-c8n1-e8 r1-16px-c8n2-e8 r2-12px-c8n2-e8-6k r3-12px-c8n2-e8-3k}"; do
  for one in $d; do
    closekit truth build --archs sample:40 --seeds 0 1 --workers 2 --no-progress --out "bench/recipes/$one" \
      ${SET[$one]:+--set ${SET[$one]}}
  done
done
