#!/usr/bin/env bash
# Mini NB301 recipe study (issue 11): the same 40 sampled genotypes (sample:40, sample seed 0: uniform over the
# DARTS space as the reference samples), seeds 0 and 1, one recipe per directory, ONE worker with 1 torch thread.
# Resumable: rerun to continue; finished (arch, seed) rows are kept. Recipes run one after the other.
# Usage: bench/recipes/nb301/run_study.sh [DIR...]   (default: every recipe below, in order)
set -e
cd "$(dirname "$0")/../../.."
declare -A SET=(
  [n1-12px-c8n1-e8-3k]=""                  # params/truth/mini-nb301.yaml as it is
  [n2-12px-c4n1-e8-3k]="C=4"               # half the channels: cheaper per job
)
for d in "${@:-n1-12px-c8n1-e8-3k n2-12px-c4n1-e8-3k}"; do
  for one in $d; do
    closekit truth build --recipe params/truth/mini-nb301.yaml --archs sample:40 --seeds 0 1 --workers 1 \
      --no-progress --out "bench/recipes/nb301/$one" ${SET[$one]:+--set ${SET[$one]}}
  done
done
