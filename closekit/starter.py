"""``closekit init DIR`` (shell): the notebooks and params files in a working directory, taken from the repository
of a checkout or from closekit/kit/ of an installed wheel (setup.py's build hook copies them there).
"""
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
FOLDERS = {"notebooks": "*.ipynb", "params": "**/*.yaml"}     # what a working directory gets (= setup.py's KIT)
README = """# closekit working directory

Made by `closekit init`. The notebooks are closekit's, the params files its configs per search space
(`smoke`: seconds, for a check; `mini-*`: minutes on a CPU; `paper-*`: the paper's scale, a GPU).

```bash
jupyter lab notebooks/nb201.ipynb                                    # open one run, edit its parameters cell
papermill notebooks/nb201.ipynb smoke.ipynb -f params/nb201/smoke.yaml -k python3     # seconds: a smoke run
closekit batch notebooks/nb201.ipynb params/nb201/mini-*.yaml --out runs/demo --cpu-slots 2
papermill notebooks/compare.ipynb compare.ipynb -p batch_dir $PWD/runs/demo -k python3
closekit train params/nb201/mini-close.yaml                          # the same run without a notebook
```

Each run writes its directory under `runs/` (checkpoint, history, scores, metrics); `closekit batch` adds an HTML
report per job. Notebooks need the `notebooks` extra: `pip install "closekit[notebooks]"`.
"""


def source():
    """The folder holding notebooks/ and params/: the repository of a checkout, else the installed kit."""
    for root in (PACKAGE.parent, PACKAGE / "kit"):
        if all((root / folder).is_dir() for folder in FOLDERS):
            return root
    raise FileNotFoundError(f"no notebooks/ and params/ beside {PACKAGE} nor in {PACKAGE / 'kit'}: reinstall "
                            "closekit from a wheel or sdist (pip install closekit), or run from a checkout")


def init(dest, force=False):
    """Copy the notebooks and params files into ``dest`` with a README (no file overwritten unless ``force``)."""
    dest, root = Path(dest), source()
    files = [(src, dest / folder / src.relative_to(root / folder))
             for folder, pattern in FOLDERS.items() for src in sorted((root / folder).glob(pattern))]
    files.append((None, dest / "README.md"))
    clash = [str(d) for _, d in files if d.exists()]
    if clash and not force:
        raise FileExistsError(f"closekit init: {len(clash)} file(s) already in {dest}, e.g. {clash[0]}; "
                              "pick an empty directory or pass --force to overwrite them")
    for src, dst in files:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst) if src else dst.write_text(README)
    return [d for _, d in files]
