#!/usr/bin/env bash
# Copy a ranking bench's small outputs into the repo so its tables survive without runs/:
#   bash bench/export_results.sh runs/bench-ranking bench/results/ranking-nb201 06020798 [-x3]
# per run <dir>/{bench.json, history.csv, config.yaml} of every finished run of that code version (8 hex), and the
# bench's ranking<TAG>.{md,csv} and probes<TAG>.csv (TAG: '' or e.g. -x3).
set -euo pipefail
src=$1 dst=$2 code=$3 tag=${4:-}
mkdir -p "$dst/runs"
for d in "$src"/*-"$code"; do
  [ -f "$d/bench.json" ] || continue
  mkdir -p "$dst/runs/$(basename "$d")"
  cp "$d/bench.json" "$d/history.csv" "$d/config.yaml" "$dst/runs/$(basename "$d")/"
done
for f in ranking"$tag".md ranking"$tag".csv probes"$tag".csv; do if [ -f "$src/$f" ]; then cp "$src/$f" "$dst/"; fi; done
ls "$dst"
