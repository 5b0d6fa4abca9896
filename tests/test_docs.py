"""The README stays short and runnable; the docs generator covers every config key and bench table; the site builds
with warnings as errors and a broken internal link fails it."""
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from closekit import RunConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
sys.path.insert(0, str(ROOT / "docs"))
import gen  # noqa: E402  (docs/gen.py)

MAX_README_LINES = 200


def test_readme_is_short_and_has_no_hashes_or_issue_numbers():
    assert len(README.splitlines()) <= MAX_README_LINES
    assert not re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", README)   # commit / code hashes
    assert not re.search(r"\bissue \d+|#\d+\b", README, re.I)


def test_readme_links_paths_and_make_targets_exist():
    links = [t for t in re.findall(r"\]\(([^)#]+)\)", README) if not t.startswith("http")]
    assert links and all((ROOT / t).exists() for t in links), [t for t in links if not (ROOT / t).exists()]
    paths = set(re.findall(r"`((?:params|notebooks|docs)/[\w./*{},-]+)`", README))
    for p in paths - {"docs/_build/html/"}:                # the one path `make docs` makes
        for expanded in re.sub(r"\{(\w+),(\w+)\}", r"\1", p), re.sub(r"\{(\w+),(\w+)\}", r"\2", p):
            assert list(ROOT.glob(expanded.rstrip("/"))), f"README names {p}, which does not exist"
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"make (\w[\w-]*)", README)):
        assert re.search(rf"^{target}:", makefile, re.M), f"README runs make {target}, not in the Makefile"


@pytest.mark.slow
def test_readme_cheap_commands_run_as_written(tmp_path):
    """`closekit init`, then the README's smoke train and ceiling commands in the initialised directory."""
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, re.S))
    wanted = [line.split("#")[0].strip() for line in blocks.splitlines()
              if line.startswith(("closekit train params/nb201/smoke.yaml", "python -c \"import closekit as c"))]
    assert len(wanted) == 2
    bindir = Path(sys.executable).parent
    subprocess.run([bindir / "closekit", "init", str(tmp_path)], check=True, capture_output=True)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}   # this python first
    for cmd in wanted:
        p = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, env=env)
        assert p.returncode == 0, f"{cmd}\n{p.stderr[-2000:]}"
        assert "kendall" in p.stdout


def test_config_reference_lists_every_field(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "OUT", tmp_path)
    gen.config_reference()
    text = (tmp_path / "config.md").read_text()
    for f in dataclasses.fields(RunConfig):
        row = next((line for line in text.splitlines() if line.startswith(f"| `{f.name}` |")), None)
        assert row is not None, f"{f.name} missing from the config reference"
        assert f"`{repr(f.default).replace('|', chr(92) + '|')}`" in row
    assert "paper 1000" in next(line for line in text.splitlines() if line.startswith("| `epochs` |"))


def test_results_pages_carry_command_code_machine_date(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "OUT", tmp_path)
    gen.results()
    for csv in (ROOT / "bench" / "results").glob("*/ranking*.csv"):
        page = (tmp_path / "results" / f"{csv.parent.name}.md").read_text()
        section = page.split(f"## {csv.stem}\n", 1)[1].split("\n## ", 1)[0]
        assert "*Command:* `python bench/ranking.py" in section and "*machine:*" in section
        assert re.search(r"\*date:\* \d{4}-\d\d-\d\d", section)
        codes = {str(c)[:8] for c in pd.read_csv(csv)["code_version"].dropna()}
        assert all(c in section for c in codes)


def sphinx(src, out):
    """sphinx-build -W of ``src`` into ``out``; the completed process."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src),
                           str(out)], capture_output=True, text=True)


@pytest.mark.slow
def test_a_broken_internal_link_fails_the_build(tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    (src / "conf.py").write_text((ROOT / "docs" / "conf.py").read_text())
    (src / "index.md").write_text("# t\n\nSee [the quickstart](quickstart.md).\n")
    p = sphinx(src, tmp_path / "html")
    assert p.returncode != 0 and "quickstart.md" in p.stderr
    (src / "quickstart.md").write_text("# q\n")
    (src / "index.md").write_text("# t\n\n```{toctree}\nquickstart\n```\n\nSee [the quickstart](quickstart.md).\n")
    assert sphinx(src, tmp_path / "html").returncode == 0


@pytest.mark.slow
def test_site_builds_without_warnings(tmp_path):
    """What `make docs` runs (the tutorials come from the execution cache after the first build)."""
    subprocess.run([sys.executable, str(ROOT / "docs" / "gen.py")], check=True, capture_output=True)
    p = sphinx(ROOT / "docs", tmp_path / "html")
    assert p.returncode == 0, p.stderr[-3000:]
    for page in ("index", "quickstart", "generated/config", "generated/tutorials/nb201", "generated/results/index"):
        assert (tmp_path / "html" / f"{page}.html").is_file()
    assert "Kendall" in (tmp_path / "html" / "generated/tutorials/nb201.html").read_text()
