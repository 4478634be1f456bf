# cnnlab — two commands for a new machine:
#   make test    set up .venv + the offline plots page (if missing or changed) and run the fast tests
#   make repro   set up .venv and run the whole pipeline (`dvc repro`)
# and one for a reduced, offline run of the whole pipeline in a few minutes (what CI runs):
#   make quick   [SOURCE=mirror MIRROR=../shared/data | SOURCE=synthetic | SOURCE=torchvision]

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PLOTS_TEMPLATE := web/plots_template.html
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

# Reduced run: a real offline mirror when one is there, synthetic data otherwise.
MIRROR ?= ../shared/data
SOURCE ?= $(if $(wildcard $(MIRROR)/mnist),mirror,synthetic)
# KEY=VALUE pairs for `python -m cnnlab.params_edit`, which edits params.yaml in place (layout and comments kept;
# `dvc exp run -S` would rewrite the whole file), before `dvc exp run`.
QUICK_PARAMS := \
	data.source=$(SOURCE) 'data.mirror=$(MIRROR)' \
	data.mnist.train_size=2000 data.mnist.test_size=500 \
	data.cifar10.train_size=2000 data.cifar10.test_size=500 \
	segment_mnist.canvas.count=64 \
	'classifier.depths=[8,18]' train_classifier.resnet18_width=0.125 train_classifier.epochs=2 \
	train_classifier.show_progress=false \
	'gradient_matrix.depths=[20]' 'gradient_matrix.inits=[default]' gradient_stats.iterations=10 gradient_stats.batch_size=32 \
	gradcam.n_eval=100 \
	train_encoder.training.epochs=2 train_encoder.training.show_progress=false \
	train_encoder.resnet18.model.width=0.125 \
	train_fcn.train_size=1000 train_fcn.training.epochs=2 train_fcn.upsample.training.epochs=2 \
	train_fcn.training.show_progress=false train_fcn.confusion_pixels=2200

.PHONY: setup test test-all repro quick dag clean-venv

# setup = the Python venv + the offline page template for `dvc plots show` (pinned Vega from npm).
setup: $(STAMP) $(PLOTS_TEMPLATE)

# cnnlab itself is installed editable (`pip install -e .`): stages, tests and benchmarks `import cnnlab`.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Vega, Vega-Lite and Vega-Embed inlined into DVC's page template, so `dvc plots show` works offline.
# Registered in .dvc/config.local (untracked): without npm, DVC keeps its default page (Vega from a CDN).
$(PLOTS_TEMPLATE): web/package.json web/package-lock.json cnnlab/vega_offline.py | $(STAMP)
	@if command -v npm >/dev/null; then \
		npm ci --prefix web --no-audit --no-fund --loglevel=error && \
		$(VENV)/bin/python -m cnnlab.vega_offline --out $@ && \
		$(VENV)/bin/dvc config --local plots.html_template ../$@; \
	else \
		echo "warning: npm not found (Debian: apt-get install npm); 'dvc plots show' will need internet"; \
	fi

# Tests in TEST_WORKERS processes (pytest-xdist; 0 = in this process). Most of the fast tests' time is stage
# subprocesses on one thread each, so two workers use both cores of a 2-core machine; `loadscope` keeps each
# module on one worker, so a module-scoped fixture (a trained stage, a tiny run) is built once.
TEST_WORKERS ?= 2
PYTEST := $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadscope

test: setup
	$(PYTEST)

test-all: setup
	$(PYTEST) -m "slow or not slow"

repro: setup
	dvc repro

quick: setup
	$(VENV)/bin/python -m cnnlab.params_edit $(QUICK_PARAMS)
	dvc exp run

dag: setup
	dvc dag

clean-venv:
	rm -rf $(VENV)
