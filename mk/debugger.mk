# Debugger and profiler reports for training jobs (container/classifier/debugger). Included by the Makefile.
#
#   make report JOB=<local job name or dir | extracted output.tar.gz dir> [RERUN=1]   the HTML report; prints its path
#   make rules  JOB=... [RULES=Overfit,DeadRelu] [PARAMS=Overfit.patience=2]          re-run the rules offline
RULES ?= all
PARAMS ?=
RERUN ?=

.PHONY: report rules

report:  ## debugger/profiler HTML report of a job: JOB=name|dir (local job or extracted output.tar.gz) [RERUN=1]
	@$(call quote,PYTHON) -m scripts.report $(call quote,JOB) $(if $(RERUN),--rerun-rules)

rules:  ## re-run the debugger/profiler rules on a job's output: JOB=name|dir [RULES=a,b] [PARAMS=Rule.p=v]
	$(call quote,PYTHON) -m scripts.report $(call quote,JOB) --rules --only $(call quote,RULES) \
		$(if $(PARAMS),--param $(call quote,PARAMS))
