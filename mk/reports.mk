# Reports (scripts/reports): tuning job, model evaluation and endpoint, each one self-contained HTML page.
# Included by the Makefile. Each prints the path of the page it wrote; OUT=<file> writes it elsewhere.
#
#   make tune-report TUNING=<name>                       a local or SageMaker tuning job's trials
#   make evaluate MODEL=<job or model dir> DATA=<dir>    a model on a class-per-folder data set
#   make evaluate ENDPOINT=<url | SageMaker endpoint> DATA=<dir>   the same through an endpoint
#   make evaluate BATCH_OUTPUT=<dir> DATA=<dir>          the same from make batch-local / batch-transform's .out files
#   make endpoint-report [PORT=8080 | LOG=<file>]        the local endpoint's requests (MMS request log)
#   make endpoint-report ENDPOINT=<SageMaker endpoint> [MINUTES=60]   the same from CloudWatch
# SageMaker ones take DRY_RUN=1 (print the requests, send nothing), as every AWS target.
MODEL ?=
ENDPOINT ?=
BATCH_OUTPUT ?=
LOG ?=
OUT ?=
OUT_ARG = $(if $(OUT),--out $(call quote,OUT))

.PHONY: tune-report evaluate endpoint-report

tune-report:  ## tuning job report: TUNING=<local or SageMaker tuning job> [OUT=file] [DRY_RUN=1]
	@$(call quote,PYTHON) -m scripts.reports.tuning_cli $(call quote,TUNING) $(OUT_ARG) $(AWS_FLAGS)

evaluate:  ## evaluation report: MODEL=<job|model dir|model.tar.gz> or ENDPOINT=<url|SageMaker endpoint>, DATA=<class folders>
	@$(call quote,PYTHON) -m scripts.reports.evaluation_cli $(if $(ENDPOINT),--endpoint $(call quote,ENDPOINT),$(if $(BATCH_OUTPUT),\
		--batch-output $(call quote,BATCH_OUTPUT),--model $(call quote,MODEL))) \
		--data $(call quote,DATA) $(OUT_ARG) $(AWS_FLAGS)

endpoint-report:  ## endpoint report: local [PORT=8080 | LOG=file] or ENDPOINT=<SageMaker endpoint> [MINUTES=60]
	@$(call quote,PYTHON) -m scripts.reports.endpoint_cli $(if $(ENDPOINT),--endpoint $(call quote,ENDPOINT) --minutes $(call quote,MINUTES),\
		$(if $(LOG),--log $(call quote,LOG),--port $(call quote,PORT))) $(OUT_ARG) $(AWS_FLAGS)
