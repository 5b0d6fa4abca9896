"""gate_explorer.ipynb through papermill: with run_dir None it trains its tiny CLOSENet (snapshot every epoch), then
shows the explorer (rendered in place into the stored widget state) and the static views the HTML report carries."""
from pathlib import Path

import nbformat
import papermill
import pytest

from closekit import batch

NB = Path(__file__).resolve().parents[1] / "notebooks/gate_explorer.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.mark.slow
def test_gate_explorer_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")                  # the kernel trains on one thread
    out = tmp_path / "gate_explorer.ipynb"
    papermill.execute_notebook(str(NB), str(out), parameters=dict(demo_epochs=3, demo_train_limit=400,
                                                                  archs="sample:30"),
                               kernel_name=batch.ensure_kernel(), cwd=str(tmp_path), progress_bar=False)
    nb = nbformat.read(out, 4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sorted(p.name for p in (tmp_path / "runs/gate-explorer-demo/snapshots").iterdir()) == \
        ["epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]     # no warnings
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    notables = sum(o.get("data", {}).get("text/plain", "") == "<IPython.core.display.Image object>" for o in outputs)
    assert notables >= 5 and images == 2 + notables + 2           # usage x2, a drawing per notable, entropy, transitions
    assert sum(WIDGET in o.get("data", {}) for o in outputs) == 1
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "3 checkpoints, 30 archs" in text and "param_slots" in text and "node-level GATE" in text
    assert "epoch 3: routing " in text and "of that across blocks" in text        # the arch-dependence finding
    # the explorer rendered its view inside the kernel, in place: stored in the notebook's widget state
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    models = [m for m in state.values() if m["model_name"] in ("ImageModel", "HTMLModel", "OutputModel")]
    assert not [m for m in models if m["model_name"] == "OutputModel"]            # no Output cleared and refilled
    assert [m.get("buffers", [{}])[0].get("data", "")[:8] for m in models if m["model_name"] == "ImageModel"] == \
        ["iVBORw0K"] * 2                                                            # base64 PNG: drawing, heatmap
    assert any("epoch 3, level 3" in m["state"].get("value", "") for m in models)
