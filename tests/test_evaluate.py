"""One-shot scoring: determinism, BN modes, routing modes, arch lists; supernet state is left untouched."""
import pytest
import torch

from closekit import build, evaluate
from closekit.evaluate import arch_list
from closekit.train import Trainer
from conftest import tiny_cfg


@pytest.fixture(scope="module")
def trained():
    cfg = tiny_cfg(epochs=2)
    space, data, net = build(cfg)
    Trainer(net, data, cfg, log=lambda *_: None).fit()
    return space, data, net


def score(trained, **kw):
    space, data, net = trained
    return evaluate(net, space, space.sample_list(5, 1), data, eval_batch_size=64, progress=False, **kw)


@pytest.mark.parametrize("kw", [dict(), dict(eval_routing="gumbel", eval_seed=5), dict(bn_mode="recalibrate", recal_batches=2)])
def test_scores_are_deterministic_and_leave_the_net_untouched(trained, kw):
    net = trained[2]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a, b = score(trained, **kw), score(trained, **kw)
    assert a.equals(b)
    assert list(a.columns) == ["arch", "acc", "loss", "score"] and a["acc"].between(0, 1).all()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert net.training


def test_score_is_the_accuracy_or_the_negated_loss(trained):
    by_acc, by_loss = score(trained), score(trained, score="loss")
    assert by_acc["score"].equals(by_acc["acc"]) and by_loss["score"].equals(-by_loss["loss"])
    assert by_acc.drop(columns="score").equals(by_loss.drop(columns="score"))      # the same scoring, ranked apart


def test_a_key_that_is_not_a_scoring_key_is_refused_in_one_line(trained):
    with pytest.raises(TypeError, match=r"evaluate\(\) got epochs=3, not a scoring key; use one of bn_mode, "):
        score(trained, epochs=3)


def test_modes_differ(trained):
    base = score(trained)
    assert not base.equals(score(trained, bn_mode="recalibrate", recal_batches=2))
    g1, g2 = score(trained, eval_routing="gumbel", eval_seed=1), score(trained, eval_routing="gumbel", eval_seed=2)
    assert not g1.equals(g2)        # routing is sampled: the seed matters


def test_max_batches_limits_images(trained):
    full, short = score(trained), score(trained, eval_max_batches=1)
    assert not full.equals(short)


def test_arch_list_specs(space, tmp_path):
    assert len(arch_list(space, "all")) == 6466 and len(arch_list(space, "valid")) == 6321
    assert arch_list(space, "sample:7", 3) == space.sample_list(7, 3)
    f = tmp_path / "archs.txt"
    f.write_text("# two archs\n|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|\n"
                 "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|avg_pool_3x3~2|\n")
    assert len(arch_list(space, str(f))) == 2
    f.write_text("|nor_conv_3x3~0|+|conv~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|\n")
    with pytest.raises(ValueError, match="archs.txt line 1: .*'conv~0'"):
        arch_list(space, str(f))
    y = tmp_path / "archs.yaml"                  # the reference's YAML arch lists: a list, or a mapping with archs
    a, b = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|", space.sample_list(1, 5)[0]
    y.write_text(f"archs:\n- '{a}'\n- '{space.to_str(b)}'\n- '{a}'\n")
    assert [space.to_str(x) for x in arch_list(space, str(y))] == [space.canonical_str(a), space.to_str(b)]
    y.write_text(f"- '{a}'\n- 'oops'\n")
    with pytest.raises(ValueError, match="archs.yaml entry 1: "):
        arch_list(space, str(y))
    y.write_text("archs: {a: 1}\n")
    with pytest.raises(ValueError, match="must be a YAML list"):
        arch_list(space, str(y))
    assert arch_list(space, "truth", truth={"arch": ["a", "b"]}) == ["a", "b"]
    with pytest.raises(ValueError, match="archs: truth needs a ground truth"):
        arch_list(space, "truth")
    with pytest.raises(FileNotFoundError, match="neither all / valid / sample:N"):
        arch_list(space, "sample-10")
