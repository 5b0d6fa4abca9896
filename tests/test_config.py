"""RunConfig: validation with one-line errors, YAML round trip, every params file loads."""
from pathlib import Path

import pytest

from closekit import RunConfig
from closekit.config import reference
from closekit.groundtruth.minibench import Recipe

PARAMS = sorted(Path(__file__).resolve().parents[1].glob("params/**/*.yaml"))


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("supernet: close\nepoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) epoch in .*p.yaml; known keys: .*epochs"):
        RunConfig.from_yaml(f)


@pytest.mark.parametrize("kw, msg", [
    (dict(supernet="closenet"), "supernet='closenet' is not one of vanilla, close"),
    (dict(gate_forward="some"), "gate_forward='some'"),
    (dict(num_blocks=4), "cl_schedule has 5 epochs but num_blocks=4"),
    (dict(cl_schedule=(2, 3, 4, 5, 6)), "must be sorted and start at epoch 1"),
    (dict(epochs=0), "epochs=0 must be >= 1"),
    (dict(train_portion=1.5), "train_portion=1.5"),
    (dict(train_portion=1), "train_portion=1.0 must be in (0, 1): the rest of the training set is the held-out"),
    (dict(epochs="ten"), "config epochs='ten' must be an int"),
    (dict(lr=True), "config lr=True must be a float"),
    (dict(cl_schedule=("a", 2, 3, 4, 5)), "cl_schedule=('a', 2, 3, 4, 5) must be a list of ints"),
    (dict(truth=3), "config truth=3 must be a str or null"),
    # values outside their domain, once accepted: nan trained to a nan loss, 0 divided by zero or meant "native"
    (dict(lr=float("nan")), "config lr=nan must be a finite number"),
    (dict(weight_decay=float("inf")), "config weight_decay=inf must be a finite number"),
    (dict(lr=0), "config lr=0.0 must be > 0"),
    (dict(train_limit=0), "config train_limit=0 must be >= 1"),
    (dict(image_size=0), "config image_size=0 must be >= 1"),
    (dict(eval_batch_size=0), "config eval_batch_size=0 must be >= 1"),
    (dict(momentum=-0.1), "config momentum=-0.1 must be >= 0"),
])
def test_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(**kw)


def test_ints_become_floats_and_lists_tuples():
    cfg = RunConfig(lr=1, srt_epochs=[13])
    assert isinstance(cfg.lr, float) and cfg.srt_epochs == (13,) and cfg == RunConfig(lr=1.0, srt_epochs=(13,))


def test_training_keys_leave_out_scoring_keys():
    a, b = RunConfig(), RunConfig(eval_routing="gumbel", truth=None, archs="sample:5", out_dir="x")
    assert a.training() == b.training() and "eval_routing" not in a.training()
    assert RunConfig(seed=1).training() != a.training()


def test_score_is_a_scoring_key_with_two_choices():
    assert RunConfig().score == "acc" and RunConfig(score="loss").training() == RunConfig().training()
    with pytest.raises(ValueError, match=r"^config score='foo' is not one of acc, loss$"):
        RunConfig(score="foo")


def test_bad_type_in_params_file_names_the_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("epochs: ten\n")
    with pytest.raises(ValueError, match=r"^params file .*p.yaml: config epochs='ten' must be an int$"):
        RunConfig.from_yaml(f)


def test_broken_yaml_is_one_line(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("epochs: 3\nlr: [0.1\n")
    with pytest.raises(ValueError, match=r"^params file .*p.yaml is not valid YAML at line \d+, column \d+: .*fix the file$"):
        RunConfig.from_yaml(f)


def test_missing_params_file():
    with pytest.raises(FileNotFoundError, match="params file nope.yaml not found"):
        RunConfig.from_yaml("nope.yaml")


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig(cl_schedule=[1, 3, 5, 7, 9], mlp_hidden=[10], truth="x.csv")
    cfg.to_yaml(tmp_path / "c.yaml")
    back = RunConfig.from_yaml(tmp_path / "c.yaml")
    assert back == cfg and back.cl_schedule == (1, 3, 5, 7, 9)
    with pytest.raises(AttributeError):
        cfg.epochs = 3                               # frozen


def test_defaults_are_the_mini_close_params():
    root = Path(__file__).resolve().parents[1]
    assert RunConfig() == RunConfig.from_yaml(root / "params/nb201/mini-close.yaml")


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_params_file_is_a_valid_config(path):
    (Recipe if path.parent.name == "truth" else RunConfig).from_yaml(path)   # params/truth/: stand-alone recipes


def test_paper_configs_match_the_reference():
    close = RunConfig.from_yaml(Path(__file__).resolve().parents[1] / "params/nb201/paper-close.yaml")
    assert (close.cl_schedule, close.srt_epochs, close.mlp_hidden) == ((1, 201, 401, 601, 801), (401,), (200, 200, 200))
    assert (close.epochs, close.batch_size, close.lr, close.weight_decay, close.grad_clip) == (1000, 256, 0.05, 5e-4, 5.0)
    assert (close.channels_init, close.cells_per_stage, close.image_size, close.dataset) == (16, 5, 32, "cifar10")


def test_reference_documents_every_key_in_groups():
    rows = reference()
    assert [r[1] for r in rows] == list(RunConfig().to_dict())                  # every key, in the config's order
    assert all(doc and len(doc) < 200 for *_, doc in rows)                       # one doc line each
    assert list(dict.fromkeys(r[0] for r in rows)) == ["what", "supernet", "sharing (a vanilla run ignores it)",
                                                       "optimisation", "scoring", "ground truth and output"]
    assert ("optimisation", "lr", "float", 0.05, "SGD learning rate") in rows
    assert ("what", "image_size", "int | None", 12, "image side in pixels (None: native resolution)") in rows
