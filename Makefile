# cnnlab — two commands for a new machine:
#   make test    set up .venv (if missing or requirements changed) and run the fast test suite
#   make repro   set up .venv and run the whole pipeline (`dvc repro`)
# and one for a reduced, offline run of the whole pipeline in a few minutes (what CI runs):
#   make quick   [SOURCE=mirror MIRROR=../shared/data | SOURCE=synthetic]

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

# Reduced run: a real offline mirror when one is there, synthetic data otherwise.
MIRROR ?= ../shared/data
SOURCE ?= $(if $(wildcard $(MIRROR)/mnist),mirror,synthetic)
QUICK_PARAMS := \
	-S data.source=$(SOURCE) -S 'data.mirror=$(MIRROR)' \
	-S data.mnist.train_size=2000 -S data.mnist.test_size=500 \
	-S data.cifar10.train_size=2000 -S data.cifar10.test_size=500 \
	-S segment_mnist.canvas.count=64 \
	-S 'classifier.depths=[8,20]' -S train_classifier.epochs=3 -S train_classifier.show_progress=false \
	-S 'gradient_matrix.depths=[8,20]' -S gradient_stats.iterations=10 -S gradient_stats.batch_size=32 \
	-S gradcam.n_eval=200 \
	-S train_mnist_cnn.training.epochs=2 -S train_mnist_cnn.training.show_progress=false \
	-S train_fcn.train_size=null -S train_fcn.training.epochs=2 -S train_fcn.upsample.training.epochs=3 \
	-S train_fcn.training.show_progress=false -S train_fcn.confusion_pixels=2200

.PHONY: setup test test-all repro quick dag clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -m "slow or not slow"

repro: $(STAMP)
	dvc repro

quick: $(STAMP)
	dvc exp run $(QUICK_PARAMS)

dag: $(STAMP)
	dvc dag

clean-venv:
	rm -rf $(VENV)
