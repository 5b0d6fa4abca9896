#!/usr/bin/env bash
# Mini NB201 recipe study (issue 3): the same 40 sampled architectures (sample:40, sample seed 0), 2 seeds,
# one recipe per directory. Resumable: rerun to continue; finished (arch, seed) rows are kept.
set -e
cd "$(dirname "$0")/../.."
build() { closekit truth build --archs sample:40 --seeds 0 1 --workers 2 --no-progress --out "bench/recipes/$1" "${@:2}"; }
build r0-16px-c8n1-e8                                  # the naive recipe of shared/notes/minibench-probes.md
build r1-16px-c8n2-e8 --set N=2                        # two cells per stage
build r2-28px-c8n1-e8 --set image_size=null            # native 28x28 resolution
