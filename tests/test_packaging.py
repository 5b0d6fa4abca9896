"""pip install works for a notebook user: the wheel carries the notebooks and params, `closekit init` lays them out."""
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from closekit import cli, starter

ROOT = Path(__file__).resolve().parents[1]


def test_init_from_checkout(tmp_path, capsys):
    assert cli.main(["init", str(tmp_path / "work")]) == 0
    work = tmp_path / "work"
    assert sorted(p.name for p in (work / "notebooks").iterdir()) == sorted(p.name for p in
                                                                            (ROOT / "notebooks").glob("*.ipynb"))
    shipped = sorted(p.relative_to(ROOT / "params") for p in (ROOT / "params").rglob("*.yaml"))
    assert sorted(p.relative_to(work / "params") for p in (work / "params").rglob("*.yaml")) == shipped
    assert (work / "params/nb201/smoke.yaml").read_bytes() == (ROOT / "params/nb201/smoke.yaml").read_bytes()
    assert "papermill notebooks/nb201.ipynb" in (work / "README.md").read_text()
    assert "notebooks" in capsys.readouterr().out


def test_init_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "README.md").write_text("mine")
    assert cli.main(["init", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "README.md").read_text() == "mine" and not (tmp_path / "notebooks").exists()
    starter.init(tmp_path, force=True)
    assert (tmp_path / "README.md").read_text() == starter.README


def run(cmd, **kw):
    """Run ``cmd``, failing the test with its output when it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.mark.slow
def test_wheel_installs_and_runs_the_smoke_notebook_outside_the_checkout(tmp_path):
    """Build the wheel, install it into a fresh venv outside the checkout (torch & co reused from this interpreter's
    site-packages through a .pth file, not reinstalled), init a working directory there and run the NB201 smoke
    notebook in it through papermill with a kernel of that venv."""
    # sdist first, then the wheel from the unpacked sdist (what PyPI users get; nothing built inside the checkout)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(ROOT)])
    wheel, = (tmp_path / "dist").glob("closekit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "closekit/kit/notebooks/nb201.ipynb" in names and "closekit/kit/params/nb201/smoke.yaml" in names
    assert "closekit/assets/mini_nb201/truth.csv" in names
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}    # the installed package, not the checkout
    run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], env=env)
    own = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env=env).stdout.strip())
    (own / "reuse.pth").write_text("\n".join(site.getsitepackages()) + "\n")   # after the install: pip
    # must not see this interpreter's closekit; paths only, so no editable finder of theirs runs
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", OMP_NUM_THREADS="1", JUPYTER_PATH=str(venv / "share/jupyter"))
    work = tmp_path / "elsewhere"
    out = run([str(venv / "bin" / "closekit"), "init", str(work)], env=env, cwd=tmp_path).stdout
    assert str(venv) in out                                             # taken from the installed kit
    run([str(py), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "python3"], env=env)
    spec = "from jupyter_client.kernelspec import KernelSpecManager as K; print(K().find_kernel_specs()['python3'])"
    assert run([str(py), "-c", spec], env=env).stdout.startswith(str(venv))      # the kernel runs the venv's python
    run([str(py), "-m", "papermill", "notebooks/nb201.ipynb", "smoke.ipynb", "-f", "params/nb201/smoke.yaml",
         "-k", "python3", "--no-progress-bar"], env=env, cwd=work)
    where = run([str(py), "-c", "import closekit; print(closekit.__file__)"], env=env, cwd=work).stdout
    assert str(venv) in where
    metrics = (work / "runs/nb201-smoke/metrics.json").read_text()
    assert '"kendall"' in metrics
