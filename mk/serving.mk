# Serving: the serving image's own stack (sagemaker-inference + multi-model-server) on this machine.
# Included by the main Makefile (include mk/*.mk).
#
#   make serve-local MODEL=<job | model dir | model.tar.gz> [PORT=8080] [WORKERS=n] [CAPTURE=<dir>]   real MMS on 127.0.0.1:PORT;
#                                        CAPTURE: SageMaker's data capture files under <dir> (mk/monitor.mk)
#   make invoke-local IMAGE=<file> [PORT=8080] [TOP_K=k]                    print the prediction
#   make batch-local DATA=<dir> [MODEL=<job | model dir | model.tar.gz>] [PORT=8080] [OUT=dir] [CONCURRENCY=4]   one request per
#                                        image, .out files and summary.json (the layout of make batch-transform)
#   make endpoint-stats [PORT=8080 | LOG=<log file>]                         count, errors, p50/p90/p99
#   make export MODEL=<job | model dir | model.tar.gz> [DATA=<data set>]      OpenVINO fp32 + int8 with the accuracy gate
#   make bench-endpoint [MODEL=<dir>] [PRICE=<$ per instance-hour>]         torch / fp32 / int8 through the endpoint
# MMS's logs (with one INVOCATION line per request) go to $(SERVE_DIR)/<port>/logs/.

PORT ?= 8080
SERVE_DIR ?= build/serve-local
WORKERS ?=
CONCURRENCY ?=
PRICE ?=
CAPTURE ?=
# The share of requests a capture keeps: the setting endpoint.capture_percent (DATA_CAPTURE_PERCENT), as on SageMaker.
CAPTURE_ARGS = $(if $(CAPTURE),--capture $(call quote,CAPTURE) \
	--capture-percent "$$($(call quote,PYTHON) -m scripts.aws.settings --get endpoint.capture_percent)")

.PHONY: serve-local invoke-local batch-local endpoint-stats export bench-endpoint

serve-local:  ## local endpoint on MMS: MODEL=<job | model dir | model.tar.gz> [PORT=8080] [WORKERS=n] [CAPTURE=<dir>]
	@test -n $(call quote,MODEL) || { echo "usage: make serve-local MODEL=<job | model dir | model.tar.gz> [PORT=8080] [WORKERS=n] [CAPTURE=<dir>]" >&2; exit 2; }
	$(call quote,PYTHON) -m scripts.local.serve --model $(call quote,MODEL) --port $(call quote,PORT) \
		--work-dir $(call quote,SERVE_DIR)/$(call quote,PORT) $(if $(WORKERS),--workers $(call quote,WORKERS)) $(CAPTURE_ARGS)

invoke-local:  ## classify IMAGE=<file> with the local endpoint [PORT=8080] [TOP_K=k]
	@test -n $(call quote,IMAGE) || { echo "usage: make invoke-local IMAGE=<file> [PORT=8080] [TOP_K=k]" >&2; exit 2; }
	@$(call quote,PYTHON) scripts/invoke.py --url http://127.0.0.1:$(call quote,PORT) \
		$(if $(TOP_K),--top-k $(call quote,TOP_K)) $(call quote_each,$(IMAGE))

batch-local:  ## batch transform on the local endpoint: DATA=<dir> [MODEL=<job | model dir | model.tar.gz>: started here | PORT=8080] [OUT=dir] [CONCURRENCY=4]
	@test "$(origin DATA)" != file || { echo "usage: make batch-local DATA=<dir of images> [MODEL=<job | model dir | model.tar.gz>] [PORT=8080] [OUT=dir]" >&2; exit 2; }
	$(call quote,PYTHON) -m scripts.local.batch --data $(call quote,DATA) $(if $(MODEL),--model $(call quote,MODEL)) --port $(call quote,PORT) \
		$(if $(OUT),--out $(call quote,OUT)) $(if $(CONCURRENCY),--concurrency $(call quote,CONCURRENCY))

endpoint-stats:  ## summarise the local endpoint's request log [PORT=8080 | LOG=<file>]
	@$(call quote,PYTHON) scripts/endpoint_stats.py $(if $(LOG),$(call quote,LOG),$(call quote,SERVE_DIR)/$(call quote,PORT)/logs/mms_log.log)

export:  ## OpenVINO fp32 + int8 beside model.pth, each judged by the accuracy gate: MODEL=<job|model dir|model.tar.gz> [DATA=<data set>]
	@test -n $(call quote,MODEL) || { echo "usage: make export MODEL=<local job | model dir | model.tar.gz> [DATA=<data set with train/ and valid/>]" >&2; exit 2; }
	$(call quote,PYTHON) -m scripts.export --model $(call quote,MODEL) $(if $(filter-out file,$(origin DATA)),--data $(call quote,DATA))

bench-endpoint:  ## torch / fp32 / int8 endpoints vs in-process, ResNet-50 and EfficientNet-Lite0 [MODEL=<dir>] [PRICE=<USD per instance-hour>]
	$(call quote,PYTHON) benchmarks/bench_endpoint.py $(if $(MODEL),--model $(call quote,MODEL)) $(if $(PRICE),--price $(call quote,PRICE))
