# Two entry points, each doing all set-up on a fresh machine: `make demo` and `make test`.
# TORCH picks the torch build pip installs first; the default pins the releases this project is tested
# with (torch 2.14.1 + torchvision 0.29.1). GPU users: `make test TORCH="torch torchvision"` or any build.
PY ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# As root with apt-get, the SLURM packages first (tests/test_slurm.py starts a one-node cluster); elsewhere those
# tests skip with one line (-rs) saying why and how to run them.
test: $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then $(MAKE) --no-print-directory slurm-deps; fi
	$(VENV)/bin/python -m pytest -rs

# The main job: the mini vanilla and mini CLOSE notebooks as a papermill batch, then the comparison notebook and
# the GATE explorer over the CLOSE run; HTML reports land in runs/demo/*/nb201.html, runs/compare/compare.html and
# runs/gate-explorer/gate_explorer.html. `make demo DEMO=nb301` (or nds-resnet, nds-resnexta) does the same for
# another space, its notebook and mini params, into runs/demo-<space>, runs/compare-<space>, runs/gate-explorer-<space>.
DEMO ?= nb201
NB.nds-resnet = nds
NB.nds-resnexta = nds
MINI.nds-resnet = params/nds/resnet-mini-
MINI.nds-resnexta = params/nds/resnexta-mini-
DEMO_NB = notebooks/$(or $(NB.$(DEMO)),$(DEMO)).ipynb
DEMO_MINI = $(or $(MINI.$(DEMO)),params/$(DEMO)/mini-)
R = $(CURDIR)/runs
S = $(if $(filter nb201,$(DEMO)),,-$(DEMO))
demo: $(VENV)/.installed
	$(VENV)/bin/closekit batch $(DEMO_NB) $(DEMO_MINI)vanilla.yaml $(DEMO_MINI)close.yaml \
		--out $(R)/demo$(S) --cpu-slots 2 --timeout 3600
	mkdir -p $(R)/compare$(S) $(R)/gate-explorer$(S)
	$(VENV)/bin/papermill notebooks/compare.ipynb $(R)/compare$(S)/compare.ipynb -k python3 --cwd $(R)/compare$(S) \
		-p batch_dir $(R)/demo$(S) --no-progress-bar
	$(VENV)/bin/jupyter nbconvert --to html --no-input $(R)/compare$(S)/compare.ipynb
	$(VENV)/bin/papermill notebooks/gate_explorer.ipynb $(R)/gate-explorer$(S)/gate_explorer.ipynb -k python3 \
		--cwd $(R)/gate-explorer$(S) -p run_dir "$$(ls -td $(R)/demo$(S)/*mini-close-* | head -1)" --no-progress-bar
	$(VENV)/bin/jupyter nbconvert --to html --no-input $(R)/gate-explorer$(S)/gate_explorer.ipynb
demo-%:   # make demo-nb301, demo-nds-resnet, demo-nds-resnexta
	$(MAKE) demo DEMO=$*

# The documentation site into docs/_build/html: docs/gen.py writes the generated pages (tutorial notebooks on their
# smoke params, the config reference, the results pages), then Sphinx builds with warnings as errors (a broken
# internal link is one). The tutorials execute on the first build (minutes on 2 cores) and come from
# docs/_build/.jupyter_cache after that. `make docs-html BIN=/path/to/venv/bin` builds with another environment.
BIN ?= $(VENV)/bin
docs: $(VENV)/.installed
	$(MAKE) docs-html
docs-html:
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} PYTHONPATH=$(CURDIR) $(BIN)/python docs/gen.py
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} PYTHONPATH=$(CURDIR) $(BIN)/python -m sphinx -W --keep-going -q -b html \
		docs docs/_build/html

.PHONY: install test demo truth slurm-deps docs docs-html

# What tests/test_slurm.py needs to start its one-node SLURM cluster (Debian/Ubuntu, as root; a no-op when present).
SLURM_PKGS ?= slurmctld slurmd slurm-client munge
slurm-deps:
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && \
		command -v munged >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq $(SLURM_PKGS) >/dev/null; }

# The shipped mini ground truths (closekit/assets/mini_<space>), built by `closekit truth build` with
# params/truth/$(TRUTH).yaml: `make truth` (mini NB201: 300 sampled representatives x 3 seeds, 2 workers),
# `make truth TRUTH=mini-nb301` or TRUTH=mini-nds-resnet / mini-nds-resnexta (200 sampled configurations x 2 seeds,
# one worker with one torch thread: measured fastest on 2 shared cores, bench/recipes/). Resumable: rerun to
# continue; finished (arch, seed) rows are kept. TRUTH_ARCHS / TRUTH_SEEDS / TRUTH_WORKERS override;
# TRUTH_ARCHS=sample:K builds the first K of the sample, a prefix that is complete on its own (commit it, go on).
TRUTH ?= mini-nb201
ARCHS.mini-nb201 = sample:300
SEEDS.mini-nb201 = 0 1 2
WORKERS.mini-nb201 = 2
TRUTH_ARCHS ?= $(or $(ARCHS.$(TRUTH)),sample:200)
TRUTH_SEEDS ?= $(or $(SEEDS.$(TRUTH)),0 1)
TRUTH_WORKERS ?= $(or $(WORKERS.$(TRUTH)),1)
truth: $(VENV)/.installed
	$(VENV)/bin/closekit truth build --recipe params/truth/$(TRUTH).yaml --archs $(TRUTH_ARCHS) --seeds $(TRUTH_SEEDS) \
		--workers $(TRUTH_WORKERS) --out closekit/assets/$(subst -,_,$(TRUTH)) --no-progress

# The NAS-Bench-301 surrogate (official `nasbench301` 0.3) in its own venv: its pinned stack (ConfigSpace 0.6.1,
# numpy<2, torch + torch_geometric + compiled torch-scatter/torch-cluster) cannot share the kit's. Then score
# DARTS genotypes with closekit.groundtruth.nb301_surrogate.predict (or the script it runs inside this venv).
# Measured here (2 shared cores, local torch mirror): ~3-13 min for the wheels, 79 min compiling torch-scatter +
# torch-cluster (pip caches the built wheels: a rebuild takes 30 s); 6.0 GB, 3.2 GB of it torch's CUDA libraries.
# NB301_TORCH: the torch build installed first (any 2.x; a CPU-only build saves ~4 GB where its index is reachable).
NB301_VENV ?= .venv-nb301
NB301_TORCH ?= torch==2.14.1
$(NB301_VENV)/.installed: requirements/nb301-surrogate.txt requirements/nb301-surrogate-src.txt
	$(PY) -m venv $(NB301_VENV)
	$(NB301_VENV)/bin/pip install -q $(NB301_TORCH)
	$(NB301_VENV)/bin/pip install -q -r requirements/nb301-surrogate.txt
	FORCE_ONLY_CPU=1 $(NB301_VENV)/bin/pip install -q --no-build-isolation -r requirements/nb301-surrogate-src.txt
	$(NB301_VENV)/bin/python -c "import nasbench301, xgboost; print('nasbench301 ok, xgboost', xgboost.__version__)"
	touch $@

nb301-surrogate: $(NB301_VENV)/.installed

# The opt-in test of the real load_ensemble + predict path (a tiny xgb ensemble built at test time).
test-nb301-surrogate: $(VENV)/.installed $(NB301_VENV)/.installed
	CLOSEKIT_NB301_SURROGATE=1 CLOSEKIT_NB301_VENV=$(abspath $(NB301_VENV)) $(VENV)/bin/python -m pytest \
		tests/test_nb301_surrogate.py

.PHONY: nb301-surrogate test-nb301-surrogate
