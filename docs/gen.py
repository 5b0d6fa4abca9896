"""Generate the site's derived pages into docs/generated/ (run by `make docs` before sphinx-build).

- tutorials/<space>.ipynb: each space's notebook with its smoke params injected (papermill's parameters cell);
  MyST-NB executes them at build time and caches the outputs;
- config.md: the config reference, one row per RunConfig field (key, type, default, doc, spaces), from
  dataclasses.fields(RunConfig) and each field's metadata (falling back to the source comment beside it);
- results/*.md: one page per bench/results/ folder, each table computed from the committed CSV files with its
  command, code version, machine, seeds and date.
Files are rewritten only when their content changes, so Sphinx and the execution cache skip what did not.
"""
import dataclasses
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import yaml

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
OUT = DOCS / "generated"
sys.path.insert(0, str(ROOT))

TUTORIALS = {   # page -> (notebook, params file or dict): each space on its smoke params, the explorer on a tiny run
    "nb201": ("nb201", "params/nb201/smoke.yaml"),
    "nb301": ("nb301", "params/nb301/smoke.yaml"),
    "nds-resnet": ("nds", "params/nds/resnet-smoke.yaml"),
    "nds-resnexta": ("nds", "params/nds/resnexta-smoke.yaml"),
    "gate-explorer": ("gate_explorer", {"demo_epochs": 6, "demo_train_limit": 1500}),
}
# The command that printed each committed table (the bench folders' READMEs say the same), and where it ran.
COMMANDS = {
    "ranking-nb201/ranking-gate-e6": 'python bench/ranking.py --variants close "close gate=a-layernorm" '
                                     '"close gate=b-norm_preserving" "close gate=c-edge_op" --seeds 0 1 2 '
                                     '--set eval_every=6',
    "ranking-nb201/ranking-ends-e6": 'python bench/ranking.py --variants vanilla "close num_blocks=1" --seeds 0 1 2 '
                                     '--set eval_every=6',
    "ranking-nb201/ranking-x3": 'python bench/ranking.py --variants vanilla close "close num_blocks=1" '
                                '"close gate=b-norm_preserving" --stretch 3 --set eval_every=18',
    "ranking-nb301/ranking": 'python bench/ranking.py --space nb301 --variants vanilla "one block" close few-shot '
                             '--seeds 0 1 2 --workers 1 --out runs/bench-ranking-nb301',
    "ranking-nb301/ranking-19cb79a8": "python bench/ranking.py --space nb301 --set eval_every=6 --workers 1 "
                                      "--out runs/bench-ranking-nb301",
    "ranking-nb201-sharing/ranking": 'python bench/ranking.py --variants vanilla "one block" close few-shot '
                                     '--seeds 0 1 2 --ablation-seeds --workers 1',
    "ranking-nb201-sharing/ranking-x3": 'python bench/ranking.py --variants vanilla "one block" close few-shot '
                                        '--seeds 0 1 2 --ablation-seeds --workers 1 --stretch 3',
    "ranking-nds-resnet/ranking": 'python bench/ranking.py --space nds-resnet --variants vanilla "one block" close '
                                  '--seeds 0 1 2 --workers 1 --out runs/bench-ranking-nds-resnet',
    "ranking-nds-resnet/ranking-58bd746a": "python bench/ranking.py --space nds-resnet --set eval_every=6 "
                                           "--workers 2 --out runs/bench-ranking-nds-resnet",
    "ranking-nds-resnet/ranking-40configs": "python bench/ranking.py --space nds-resnet --set eval_every=6 "
                                            "(on the first 40 configurations of the truth)",
    "ranking-nds-resnexta/ranking": 'python bench/ranking.py --space nds-resnexta --variants vanilla "one block" '
                                    'close --seeds 0 1 2 --workers 2 --out runs/bench-ranking-nds-resnexta',
    "ranking-nds-resnexta/ranking-58bd746a": 'python bench/ranking.py --space nds-resnexta --set eval_every=6 '
                                             '--variants vanilla close "vanilla head_norm=mean" '
                                             '"close head_norm=mean" --workers 1 --out runs/bench-ranking-nds-resnexta',
    "ranking-nds-resnexta/ranking-40configs": "python bench/ranking.py --space nds-resnexta --set eval_every=6 "
                                              "(on the first 40 configurations of the truth)",
}
MACHINE = "CPU (2 shared cores, Intel Xeon), one torch thread per run, torch 2.14.1"   # as the folders' READMEs say
METRICS = ("kendall", "p@top5%", "br@5%_rel")


def write(path, text):
    """Write ``text`` to ``path`` unless it already holds exactly that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def tutorials():
    """Each tutorial notebook with its params injected as papermill does (no execution here)."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    for page, (notebook, params) in TUTORIALS.items():
        nb = load_notebook_node(str(ROOT / "notebooks" / f"{notebook}.ipynb"))
        values = yaml.safe_load((ROOT / params).read_text()) if isinstance(params, str) else params
        nb = parameterize_notebook(nb, values, kernel_name="python3", language="python")
        nb.metadata.pop("papermill", None)                 # its timestamps would defeat the cache
        for title in [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# ")][:1]:
            title.source = "#" + title.source              # under the page's own title (the run notebooks have none)
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            if "parameters" in cell.metadata.get("tags", []):
                cell.metadata.tags.append("hide-input")    # every default: long, one click away
        where = params if isinstance(params, str) else ", ".join(f"{k}={v}" for k, v in params.items())
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(
            f"# Tutorial: {page}\n\n`notebooks/{notebook}.ipynb` executed when the site was built, on `{where}` "
            "(seconds to a minute on a CPU; the mini and paper params are the same notebook at larger scale)."))
        for i, cell in enumerate(nb.cells):
            cell.id = f"cell-{i}"                          # stable ids: an unchanged page is not rewritten
        write(OUT / "tutorials" / f"{page}.ipynb", nbformat.writes(nb))


def source_docs(cls):
    """{field: (group, comment)} read from the class source: '# group' lines and each field's trailing comment
    (continuation comment lines included); the fallback while fields carry no doc metadata."""
    out, group, last = {}, "", None
    for line in inspect.getsource(cls).splitlines():
        field = re.match(r"    (\w+): [^=]+=.*?(?:#\s*(.*))?$", line)
        if field:
            last = field.group(1)
            out[last] = (group, field.group(2) or "")
        elif re.match(r"    # (.+)$", line):
            group, last = line.strip()[2:], None
        elif last and re.match(r"\s{8,}# ", line):
            out[last] = (out[last][0], out[last][1] + " " + line.strip()[2:])
    return out


def config_reference():
    """docs/generated/config.md: every RunConfig key with its type, default and doc line, grouped."""
    from closekit.config import CHOICES, RunConfig
    fallback = source_docs(RunConfig)
    rows = []
    for f in dataclasses.fields(RunConfig):
        group, comment = fallback.get(f.name, ("", ""))
        doc = f.metadata.get("doc", "") or comment
        if f.name in CHOICES:
            doc += f" (one of: {', '.join(map(str, CHOICES[f.name]))})"
        rows.append((f.metadata.get("group", group), f.name, str(f.type), repr(f.default),
                     doc, f.metadata.get("spaces", "")))
    cell = lambda s: str(s).replace("|", "\\|")
    lines = ["# Config reference", "",
             "Generated from `closekit.RunConfig` by `docs/gen.py` at build time: every key a params file, "
             "`--set KEY=VALUE` or a notebook's parameters cell takes. Unknown keys and wrong types are refused in "
             "one line.", ""]
    for group in dict.fromkeys(r[0] for r in rows):
        lines += [f"## {group or 'other'}", "", "| key | type | default | only for spaces | doc |", "|---|---|---|---|---|"]
        lines += [f"| `{k}` | `{cell(t)}` | `{cell(d)}` | {cell(s)} | {cell(doc)} |"
                  for g, k, t, d, doc, s in rows if g == group]
        lines.append("")
    write(OUT / "config.md", "\n".join(lines))


def committed(path):
    """The date of the last commit touching ``path`` (YYYY-MM-DD), or 'uncommitted'."""
    p = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%cs", "--", str(path)],
                       capture_output=True, text=True)
    return p.stdout.strip() or "uncommitted"


def mean_sd(values):
    """'mean ± sd' over seeds ('value' for one seed)."""
    v = values.dropna()
    if v.empty:
        return ""
    return f"{v.mean():.3f}" if len(v) == 1 else f"{v.mean():.3f} ± {v.std():.3f}"


def ranking_table(csv):
    """One markdown table from a bench/ranking.py CSV (per variant: seeds, metric mean ± sd, train s, code
    version) and the ground truths it was ranked against."""
    df = pd.read_csv(csv)
    keys = ["code_version", "truth_key"]      # a re-scored row ('X, scored ...') has them from its run's row
    df[keys] = df.groupby("seed")[keys].ffill()
    lines = ["| variant | seeds | " + " | ".join(METRICS) + " | train s/run | code version |",
             "|---" * (len(METRICS) + 4) + "|"]
    for variant, g in df.groupby("variant", sort=False):
        seeds = " ".join(str(s) for s in sorted(g["seed"]))
        code = ", ".join(sorted({str(c)[:8] for c in g["code_version"].dropna()})) or "not recorded"
        lines.append(f"| {variant} | {seeds} | " + " | ".join(mean_sd(g[m]) for m in METRICS)
                     + f" | {g['train_seconds'].mean():.0f} | `{code}` |")
    return "\n".join(lines), sorted({str(t) for t in df["truth_key"].dropna()})


def results():
    """One page per bench/results/ folder; the index lists them."""
    pages = []
    for folder in sorted((ROOT / "bench" / "results").iterdir()):
        if not folder.is_dir():
            continue
        lines = [f"# {folder.name}", "",
                 f"Generated by `docs/gen.py` from `bench/results/{folder.name}/` (the committed outputs of the "
                 "bench; mean ± sd over the listed seeds).", ""]
        for csv in sorted(folder.glob("ranking*.csv")):
            key = f"{folder.name}/{csv.stem}"
            table, truths = ranking_table(csv)
            lines += [f"## {csv.stem}", "", table, "",
                      f"*Command:* `{COMMANDS.get(key, 'python bench/ranking.py (see the folder README)')}`; "
                      f"*ground truth:* {', '.join(f'`{t}`' for t in truths) or 'not recorded'}; "
                      f"*machine:* {MACHINE}; *date:* {committed(csv)}; *file:* `bench/results/{key}.csv`.", ""]
        for png in sorted(folder.glob("*.png")):
            dst = OUT / "results" / folder.name / png.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.is_file() or dst.read_bytes() != png.read_bytes():
                shutil.copyfile(png, dst)
            lines += [f"## {png.stem}", "", f"![{png.stem}]({folder.name}/{png.name})", "",
                      f"*file:* `bench/results/{folder.name}/{png.name}`; *date:* {committed(png)}.", ""]
        for txt in sorted(folder.glob("*.txt")) + sorted(folder.glob("gate-signal*.md")):
            lines += [f"## {txt.stem}", "", "```text", txt.read_text().rstrip(), "```", "",
                      f"*file:* `bench/results/{folder.name}/{txt.name}`; *date:* {committed(txt)}.", ""]
        if (folder / "README.md").is_file():
            lines += ["## Notes (the folder's README)", "", "```text", (folder / "README.md").read_text().rstrip(),
                      "```", ""]
        write(OUT / "results" / f"{folder.name}.md", "\n".join(lines))
        pages.append(folder.name)
    write(OUT / "results" / "index.md", "\n".join(
        ["# Results", "", "Every table here is computed from the CSV files committed under `bench/results/` "
         "(`docs/gen.py`). The narrative that goes with them: [measured results and their history]"
         "(../../results-history.md).", "", "```{toctree}", ":maxdepth: 1", "", *pages, "```", ""]))


if __name__ == "__main__":
    tutorials()
    config_reference()
    results()
    print(f"docs/gen.py: wrote {OUT.relative_to(ROOT)}/ (tutorials, config.md, results)")
