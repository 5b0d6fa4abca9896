#!/usr/bin/env bash
# One short GPU check (about 3 minutes on an H100/H200): the step-time bench on cuda at paper scale, the
# training/scoring tests on cuda with deterministic kernels (exact resume), and the all vs others_no_grad
# equality on cuda (bitwise with deterministic kernels; TF32 and nondeterministic kernels make GPU runs drift). Run from the repo root; results go to $OUT (default ./gpu-check).
OUT=${OUT:-gpu-check}; mkdir -p "$OUT"
export PYTHONPATH=$PWD TQDM_DISABLE=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 150 python bench/step_time.py --device cuda --scale paper --json "$OUT/cuda.json" | tee "$OUT/bench.txt"
CLOSEKIT_TEST_DEVICE=cuda timeout 120 python -m pytest -q -p no:cacheprovider tests/test_train.py tests/test_evaluate.py 2>&1 | tail -5
python - <<'PY'
import copy, torch
from closekit import RunConfig, Trainer
from closekit.spaces import get
torch.use_deterministic_algorithms(True, warn_only=True)
space = get("nb201")
cfg = RunConfig(channels_init=16, cells_per_stage=5, num_blocks=5, cl_schedule=(1, 2, 3, 4, 5), gate_forward="all")
torch.manual_seed(0)
base = space.supernet(cfg, 3, 10).cuda()
base.epoch_start(5)
nets = {"all": base, "others_no_grad": copy.deepcopy(base)}
nets["others_no_grad"].gate_forward = "others_no_grad"
x, y = torch.randn(64, 3, 32, 32, device="cuda"), torch.randint(10, (64,), device="cuda")
for name, net in nets.items():
    torch.manual_seed(1)
    tr = Trainer(net, None, cfg, space=space, log=lambda *_: None)
    for _ in range(3):
        tr.step(x, y)
diff = max((a.float() - b.float()).abs().max().item() for a, b in
           zip(nets["all"].state_dict().values(), nets["others_no_grad"].state_dict().values()))
print(f"cuda, deterministic kernels: all vs others_no_grad after 3 steps at 5 blocks, max abs state difference {diff:.2e}")
PY
