#!/usr/bin/env bash
# Mini NDS recipe studies (issue 12): the same 40 sampled configurations (sample:40, sample seed 0), seeds 0
# and 1, one recipe per directory, ONE worker with 1 torch thread, recipes one after the other. Resumable: rerun to
# continue; finished (arch, seed) rows are kept.
# Usage: bench/recipes/nds/run_study.sh [DIR...]   (default: both recipes)
set -e
cd "$(dirname "$0")/../../.."
# ResNet: n*, recipe params/truth/mini-nds-resnet.yaml; ResNeXt-A: x*, recipe params/truth/mini-nds-resnexta.yaml.
declare -A SET=(
  [n0-12px-c2-e4-3k]="train_limit=3000"             # the first try, stopped after 4 configs: 96 steps are too few
  [n1-12px-c2-e4-6k]="C=2"                           # half the widths of the chosen recipe
  [n2-12px-c4-e4-6k]=""                              # params/truth/mini-nds-resnet.yaml as it is (chosen)
  [x1-12px-c4-e4-6k]=""                              # params/truth/mini-nds-resnexta.yaml as it is (ResNet's winner)
  [x2-12px-c8-e4-6k]="C=8"                           # twice the widths: bottleneck widths alias less (1 of 45)
)
for d in ${@:-n1-12px-c2-e4-6k n2-12px-c4-e4-6k}; do
  recipe=params/truth/mini-nds-resnet.yaml
  [[ $d == x* ]] && recipe=params/truth/mini-nds-resnexta.yaml
  closekit truth build --recipe $recipe --archs sample:40 --seeds 0 1 --workers 1 \
    --no-progress --out "bench/recipes/nds/$d" ${SET[$d]:+--set ${SET[$d]}}
done
