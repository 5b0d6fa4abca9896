"""The end-of-run headline and the training warning (closekit.metrics)."""
import pandas as pd

from closekit.metrics import headline_text, training_warning


def test_headline_text_names_the_numbers_and_ceilings():
    m = {"kendall": 0.4123, "spearman": 0.55, "p@top5%": 0.2, "br@5%_rel": 0.01, "n": 300,
         "truth_best_kendall": 0.83, "truth_seed_kendall": 0.65}
    text = headline_text(m)
    assert text.startswith("kendall 0.412, spearman 0.550") and "over 300 architectures" in text
    assert "best reachable kendall 0.830" in text and "seed-to-seed kendall 0.650" in text


def test_headline_text_without_truth_is_the_score_summary():
    text = headline_text({"n_scored": 20, "oneshot_acc_mean": 0.31, "oneshot_acc_std": 0.05})
    assert text == "20 architectures scored, one-shot accuracy 0.310 +- 0.050 (no ground truth)"


def hist(losses, accs):
    return pd.DataFrame({"train_loss": losses, "train_acc": accs})


def test_training_warning_cases():
    assert training_warning(hist([2.3, 1.2], [0.2, 0.6]), 10) is None
    assert "rose (4.50 -> 5.57)" in training_warning(hist([4.5, 5.57], [0.05, 0.3]), 100)
    assert "near chance accuracy (12.0%, chance 10.0%)" in training_warning(hist([2.3, 2.2], [0.1, 0.12]), 10)
    assert "diverged" in training_warning(hist([2.3, float("nan")], [0.1, 0.1]), 10)
