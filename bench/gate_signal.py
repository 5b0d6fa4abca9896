"""How much does the GATE see the architecture? (CLOSE §3.3; issue 5's finding)

Compares how much the GATE's logits vary across architectures with how much they vary across blocks, for a
freshly built CLOSENet of a params file and, when given, trained checkpoints. A ratio far below 1 means the GATE
routes every architecture alike: argmax scoring then uses one block everywhere.

    python bench/gate_signal.py                                    # the mini CLOSE config at initialisation
    python bench/gate_signal.py --ckpt runs/bench-ranking/close-seed0-*/checkpoint.pt
"""
import argparse
from pathlib import Path

import torch

import closekit
from closekit.checkpoint import load_net
from closekit.spaces.nb201_arch import to_matrix

ROOT = Path(__file__).resolve().parents[1]


def gate_logits(gate, adj):
    """The NB201 GATE's logits for a batch: adj [B, V, V] long -> [B, E, K] over all K blocks."""
    z = gate.encoder(adj)                                                 # [B, V, D]
    if gate.level_kind == "node":
        return gate.mlp(torch.cat([z[:, gate.from_idx], z[:, gate.to_idx]], -1))
    return gate.mlp(z[:, -1]).view(len(adj), len(gate.edges), gate.num_blocks)


def signal(net, archs):
    """(sd over archs, sd over blocks, mean node-embedding sd over archs) of the GATE at the net's level."""
    adj = torch.tensor([to_matrix(a) for a in archs], dtype=torch.long).view(-1, 4, 4)
    level = max(int(net.level), 2)                        # at level 1 the spread over blocks of the first two
    with torch.no_grad():
        net.eval()
        logits = gate_logits(net.router, adj)[..., :level]   # [A, E, L]
        z = net.router.encoder(adj)                           # [A, V, D]
    return logits.std(0).mean().item(), logits.std(-1).mean().item(), z.std(0).mean().item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params/nb201/mini-close.yaml"))
    p.add_argument("--ckpt", nargs="*", default=[], help="trained checkpoints to compare")
    p.add_argument("--archs", type=int, default=500, help="sampled valid representatives")
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = closekit.RunConfig.from_yaml(args.params, truth=None, archs="sample:1")
    space, _, net = closekit.build(cfg)
    archs = space.sample_list(args.archs, 0)
    print("| net | logit sd over archs | logit sd over blocks | ratio | embedding sd over archs |")
    print("|---|---|---|---|---|")
    for name, n in [(f"{Path(args.params).name} at init", net)] + [(c, load_net(c)[0]) for c in args.ckpt]:
        a, b, z = signal(n, archs)
        print(f"| {name} | {a:.2e} | {b:.2e} | {a / b:.1e} | {z:.2e} |")


if __name__ == "__main__":
    main()
