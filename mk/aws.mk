# AWS: push images, upload data, tune, train, deploy, invoke, endpoint metrics, cleanup (scripts/aws).
# Included by the main Makefile. Settings: config/settings.yaml, overridden by the environment or the
# make command line (make tune S3_BUCKET=my-bucket SAGEMAKER_ROLE_ARN=arn:aws:iam::...:role/...).
# Every target takes DRY_RUN=1: print the exact requests, send nothing (no credentials needed).
#
#   make build push                         build, then push both images to ECR (tags: git commit, latest)
#   make upload-data DATA=dir [WEIGHTS=f]   check the layout, sync the data set to S3 (DELETE=1: remove extras)
#   make tune [MAX_JOBS= MAX_PARALLEL= STRATEGY= EARLY_STOPPING= HP=] [PARENT_TUNING="a b"]   tuning job, wait,
#                                           trials, best (the same variables as tune-local, the same meaning)
#                                           shared features: a feature job first (or its stored cache), trials
#                                           on tuning.cached_instance_type; NO_CACHE=1: none (as tune-local)
#   make tune TUNING=name                   wait for / report on an existing tuning job
#   make train TUNING=name [HP="best epochs=10"] | HP="lr=..."   one training job, log streamed, metrics, model
#                                           artifact; hyperparameters as train-local: static < best trial < HP;
#                                           TUNING=: the final job (last stage fine-tuned from the best trial's
#                                           model), then which model is the final one
#   make train INIT_MODEL=<training job | s3://.../model.tar.gz> [HP=...]   start from an earlier model
#   make register [JOB= | TUNING= | MODEL_DATA=] [EVALUATION=evaluation.json] [APPROVE=1]   a new model package
#                                           version (group made when missing): image, artifact, classes,
#                                           hyperparameters, model quality metrics; PendingManualApproval
#   make packages                           the group's versions: status, metrics, which one is deployed
#   make approve VERSION=N [REJECT=1] [NOTE="..."]                 approve (or reject) a version
#   make deploy [PACKAGE=latest-approved|N [FORCE=1] | JOB=training-job | TUNING=name | MODEL_DATA=s3://...]
#                                           create or update the endpoint (ENDPOINT_TYPE=realtime|serverless|async,
#                                           DEPLOYMENT=all_at_once|canary|linear); prints its cost first
#                                           (LATENCY_MS=: your latency for the per-request cost); DRY_RUN=1
#                                           DRY_RUN_UPDATE=1 shows the update of an existing endpoint
#   make rollback [FORCE=1]                 back to the model the endpoint served before its last deploy
#   make deploy-finish                      after make deploy/rollback NO_WAIT=1: auto scaling, tags, old config
#   make batch-transform DATA_S3=s3://bucket/prefix/ [MODEL=<SageMaker model> | JOB= | TUNING= | MODEL_DATA=]
#                                           transform job (one image per request, JSON), wait, summary; the
#                                           outputs in build/batch-transform/<job>/ (OUT=dir elsewhere)
#   make invoke IMAGE=file.jpg [TOP_K=5]    classify with the endpoint (scripts/invoke.py); async: through S3
#   make endpoint-metrics                   the endpoint's CloudWatch metrics, last hour
#   make endpoint-logs [MINUTES=60] [FOLLOW=1]   the endpoint's CloudWatch logs, all instances merged by time
#   make training-logs JOB=<SageMaker training job> [MINUTES=] [FOLLOW=1]   the same for a training job
#                                           (make logs JOB= is a local job's log)
#   make cleanup                            delete endpoint, endpoint config and model
#   make iam-policy [OUT=dir]               the least-privilege IAM policies, from every target's dry run:
#                                           the caller's, the administrator's, the execution role's and its trust
#   make bootstrap                          a new account: the execution role with its policy, the bucket
#                                           (encrypted, private, lifecycle rule), the ECR repositories
#   make teardown [ALL=1] [YES=1]           list, ask, delete: the serving side; ALL=1 everything the project made
#   make aws-settings                       the settings in effect and where each came from

DRY_RUN ?=
NO_WAIT ?=
DATA_S3 ?=
WEIGHTS ?=
DELETE ?=
PARENT_TUNING ?=
WARM_START_TYPE ?= auto
MODEL_DATA ?=
IMAGE ?=
TOP_K ?=
MINUTES ?= 60
JOB_DEFINITION ?=
PACKAGE ?=
FORCE ?=
EVALUATION ?=
APPROVE ?=
VERSION ?=
REJECT ?=
NOTE ?=
LATENCY_MS ?=
DRY_RUN_UPDATE ?=
FOLLOW ?=
ALL ?=
YES ?=

AWS_FLAGS = $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run)
AWS_WAIT = $(if $(filter 1 true yes,$(NO_WAIT)),--no-wait)
AWS_FORCE = $(if $(filter 1 true yes,$(FORCE)),--force)
AWS_FOLLOW = $(if $(filter 1 true yes,$(FOLLOW)),--follow)
AWS_LATENCY = $(if $(LATENCY_MS),--latency-ms $(call quote,LATENCY_MS))
AWS_SOURCE = $(if $(JOB),--job $(call quote,JOB)) $(if $(TUNING),--tuning $(call quote,TUNING)) \
	$(if $(MODEL_DATA),--model-data $(call quote,MODEL_DATA))
AWS_JOBDEF = $(if $(JOB_DEFINITION),--job-definition $(call quote,JOB_DEFINITION))
AWS_DATA = --data $(call quote,DATA) $(if $(DATA_S3),--data-s3 $(call quote,DATA_S3))
# The image tag tune/train/deploy use: IMAGE_TAG, else ecr.image_tag, else the git short commit (= the
# TAG of mk/images.mk); a TAG= given to make for build/push is used too.
AWS_ENV = $(if $(filter command line,$(origin TAG)),$(if $(IMAGE_TAG),,IMAGE_TAG=$(call quote,TAG)))

.PHONY: push upload-data tune train register packages approve deploy rollback deploy-finish batch-transform invoke \
	endpoint-metrics endpoint-logs training-logs cleanup aws-settings test-aws iam-policy bootstrap teardown

push:  ## push the built images to ECR, tagged with the git commit and latest (repositories made when missing)
	$(call quote,PYTHON) -m scripts.aws.push_images $(AWS_FLAGS) --tag $(call quote,TAG) --engine $(call quote,CONTAINER_ENGINE) \
		--training-image $(call quote,TRAINING_IMAGE) --serving-image $(call quote,SERVING_IMAGE)

upload-data:  ## sync DATA=dir (train/ valid/ [test/]) to S3 after the training job's layout checks; WEIGHTS=file, DELETE=1
	$(call quote,PYTHON) -m scripts.aws.upload_data $(AWS_FLAGS) $(AWS_DATA) $(if $(WEIGHTS),--weights $(call quote,WEIGHTS)) \
		$(if $(filter 1 true yes,$(DELETE)),--delete)

tune:  ## SageMaker tuning job from config/job.yaml (TUNING=name: attach; PARENT_TUNING=: warm start)
	$(AWS_ENV) $(call quote,PYTHON) -m scripts.aws.tune $(AWS_FLAGS) $(AWS_JOBDEF) $(AWS_WAIT) $(AWS_DATA) \
		$(if $(TUNING),--attach $(call quote,TUNING)) \
		$(addprefix --parent ,$(call quote_each,$(PARENT_TUNING))) --warm-start-type $(call quote,WARM_START_TYPE) \
		$(TUNE_ARGS) $(NO_CACHE_FLAG)

train:  ## one SageMaker training job: TUNING=name [HP="best epochs=10"] (its final job) | HP="lr=0.01 ..." [INIT_MODEL=job|s3://...]
	$(AWS_ENV) $(call quote,PYTHON) -m scripts.aws.train $(AWS_FLAGS) $(AWS_JOBDEF) $(AWS_WAIT) $(AWS_DATA) \
		$(if $(TUNING),--tuning $(call quote,TUNING)) $(if $(HP_ARGS),--hp $(call quote,HP_ARGS)) \
		$(if $(INIT_MODEL),--init-model $(call quote,INIT_MODEL))

register:  ## a model registry version: JOB= | TUNING= | MODEL_DATA= (default: newest job) [EVALUATION=file] [APPROVE=1]
	$(AWS_ENV) $(call quote,PYTHON) -m scripts.aws.registry register $(AWS_FLAGS) $(AWS_JOBDEF) $(AWS_SOURCE) \
		$(if $(EVALUATION),--evaluation $(call quote,EVALUATION)) $(if $(filter 1 true yes,$(APPROVE)),--approve)

packages:  ## the model registry's versions: status, metrics, which one the endpoint serves
	$(call quote,PYTHON) -m scripts.aws.registry packages $(AWS_FLAGS)

approve:  ## approve a model registry version: VERSION=N [REJECT=1: reject it] [NOTE="why"]
	$(call quote,PYTHON) -m scripts.aws.registry approve $(AWS_FLAGS) --version $(call quote,VERSION) \
		$(if $(filter 1 true yes,$(REJECT)),--reject) $(if $(NOTE),--note $(call quote,NOTE))

deploy:  ## create or update the endpoint: PACKAGE=latest-approved|N | JOB= | TUNING= | MODEL_DATA= (default: newest job)
	$(AWS_ENV) $(call quote,PYTHON) -m scripts.aws.deploy $(AWS_FLAGS) $(AWS_JOBDEF) $(AWS_WAIT) $(AWS_SOURCE) \
		$(if $(PACKAGE),--package $(call quote,PACKAGE)) $(AWS_FORCE) $(AWS_LATENCY) \
		$(if $(filter 1 true yes,$(DRY_RUN_UPDATE)),--assume-exists)

rollback:  ## the endpoint back to the model it served before its last deploy, without downtime [FORCE=1]
	$(call quote,PYTHON) -m scripts.aws.rollback $(AWS_FLAGS) $(AWS_WAIT) $(AWS_FORCE) $(AWS_LATENCY)

deploy-finish:  ## after make deploy NO_WAIT=1: wait until InService, auto scaling, tags, delete the replaced config and model
	$(call quote,PYTHON) -m scripts.aws.deploy $(AWS_FLAGS) --finish

batch-transform:  ## transform job over DATA_S3=s3://bucket/prefix/ [MODEL=<SageMaker model> | JOB= | TUNING= | MODEL_DATA=] [OUT=dir]
	$(AWS_ENV) $(call quote,PYTHON) -m scripts.aws.batch_transform $(AWS_FLAGS) $(AWS_JOBDEF) --data-s3 $(call quote,DATA_S3) \
		$(if $(MODEL),--model $(call quote,MODEL)) $(if $(JOB),--job $(call quote,JOB)) \
		$(if $(TUNING),--tuning $(call quote,TUNING)) $(if $(MODEL_DATA),--model-data $(call quote,MODEL_DATA)) \
		$(if $(OUT),--out $(call quote,OUT))

invoke:  ## classify IMAGE=file.jpg (several: IMAGE="a.jpg b.png") with the endpoint; TOP_K=5
	$(call quote,PYTHON) -m scripts.aws.invoke_endpoint $(AWS_FLAGS) $(call quote_each,$(IMAGE)) $(if $(TOP_K),--top-k $(call quote,TOP_K))

endpoint-metrics:  ## the endpoint's CloudWatch metrics for the last hour (MINUTES=60)
	$(call quote,PYTHON) -m scripts.aws.endpoint_metrics $(AWS_FLAGS) --minutes $(call quote,MINUTES)

endpoint-logs:  ## the endpoint's CloudWatch logs, every instance merged by time [MINUTES=60] [FOLLOW=1]
	$(call quote,PYTHON) -m scripts.aws.logs endpoint $(AWS_FLAGS) --minutes $(call quote,MINUTES) $(AWS_FOLLOW)

training-logs:  ## a SageMaker training job's CloudWatch logs: JOB=name [MINUTES=] [FOLLOW=1] (make logs: local jobs)
	$(call quote,PYTHON) -m scripts.aws.logs training $(AWS_FLAGS) $(call quote,JOB) $(AWS_FOLLOW) \
		$(if $(filter command line,$(origin MINUTES)),--minutes $(call quote,MINUTES))

cleanup:  ## delete the endpoint, its endpoint config and model
	$(call quote,PYTHON) -m scripts.aws.cleanup $(AWS_FLAGS)

iam-policy:  ## the least-privilege IAM policies (caller, administrator, execution role, trust) as JSON files [OUT=dir]
	$(call quote,PYTHON) -m scripts.aws.iam_policy $(AWS_FLAGS) $(if $(OUT),--out $(call quote,OUT))

bootstrap:  ## a new account: the execution role and its policy, the bucket (encrypted, private, lifecycle), the ECR repositories
	$(call quote,PYTHON) -m scripts.aws.bootstrap $(AWS_FLAGS)

teardown:  ## list, confirm, delete: the endpoint and what deploy made [ALL=1: everything the project made] [YES=1: no question]
	$(call quote,PYTHON) -m scripts.aws.teardown $(AWS_FLAGS) $(if $(filter 1 true yes,$(ALL)),--all) \
		$(if $(filter 1 true yes,$(YES)),--yes)

aws-settings:  ## the AWS settings in effect (config/settings.yaml + environment) and where each came from
	$(call quote,PYTHON) -m scripts.aws.settings

test-aws:  ## the AWS scripts' tests (botocore Stubber + a local moto server; no AWS account)
	$(call quote,PYTHON) -m pytest -q tests/aws
