# The model monitor (scripts/monitor): an endpoint's captured requests against the baseline its model's training
# job wrote (model/monitor_baseline.npz). Included by the Makefile. docs/monitoring.md says how to read the report.
#
#   make serve-local MODEL=<model or job dir> CAPTURE=<dir>      (mk/serving.mk) the local endpoint writes SageMaker's
#                                           capture files under <dir>, sampled by endpoint.capture_percent
#   make monitor-report CAPTURE=<dir> MODEL=<job|model dir> [HOURS=h] [LOG=<mms_log.log>] [PUBLISH=1]
#   make monitor-report ENDPOINT=<SageMaker endpoint> [MODEL=...] [HOURS=h] [PUBLISH=1] [DRY_RUN=1]
#                                           the report (build/monitor/<name>/monitor-report.html) and monitor.json,
#                                           with a verdict per check and "drift": true|false; PUBLISH=1: CloudWatch
#                                           metrics for the alarms make deploy makes with monitor.alarm
#   make monitor-baseline MODEL=<job|model dir> DATA=<data set or its valid/>   the baseline of a model without one
HOURS ?=
PUBLISH ?=
ALPHA ?=

.PHONY: monitor-report monitor-baseline

monitor-report:  ## drift of captured requests: CAPTURE=<dir> MODEL=<job|model dir> | ENDPOINT=<SageMaker endpoint> [HOURS=] [PUBLISH=1]
	@$(call quote,PYTHON) -m scripts.monitor.monitor_cli $(if $(ENDPOINT),--endpoint $(call quote,ENDPOINT),\
		$(if $(CAPTURE),--capture $(call quote,CAPTURE))) $(if $(MODEL),--model $(call quote,MODEL)) \
		$(if $(HOURS),--hours $(call quote,HOURS)) $(if $(LOG),--log $(call quote,LOG)) \
		$(if $(ALPHA),--alpha $(call quote,ALPHA)) $(if $(filter 1 true yes,$(PUBLISH)),--publish) $(OUT_ARG) $(AWS_FLAGS)

monitor-baseline:  ## the monitor's baseline for a model that has none: MODEL=<job|model dir> DATA=<data set or its valid/>
	@$(call quote,PYTHON) -m scripts.monitor.baseline_cli --model $(call quote,MODEL) --data $(call quote,DATA)
