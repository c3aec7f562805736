# Container images: build, base-image, container-test. Included by the main Makefile (include mk/*.mk).
#
#   make build                    training + serving images, with whichever of docker, podman, buildah works
#   make base-image               localhost/debian-bookworm-minbase from debootstrap (no registry needed)
#   make container-test           build both, then train in the training image and serve/invoke/stop the
#                                 serving image for real (tests/container/run_container_test.sh)
# Where no registry can be reached (this project's machines): add BASE_IMAGE=$(LOCAL_BASE_IMAGE); the
# base image is then built first when it is missing. Any other base image is looked for, then pulled
# within PULL_TIMEOUT seconds, before a build starts; if that fails the build stops at once with the
# exact command to use the local base (scripts/check_base_image.sh).

BASE_IMAGE ?= debian:bookworm-slim
LOCAL_BASE_IMAGE ?= localhost/debian-bookworm-minbase:latest
TRAINING_IMAGE ?= byoc-classifier-training
SERVING_IMAGE ?= byoc-classifier-serving
# Evaluated once per make run (others may commit while a build runs).
TAG ?= $(eval TAG := $(shell git rev-parse --short HEAD 2>/dev/null || echo latest))$(TAG)
# 1: bake torchvision's ResNet-50 ImageNet weights into the training image (needs download.pytorch.org).
BAKE_RESNET50_WEIGHTS ?= 0
# Isolation for podman/buildah builds: chroot works inside containers and VMs without user namespaces.
BUILD_ISOLATION ?= chroot
# CA bundle bind-mounted into podman/buildah builds for pip (hosts whose HTTPS goes through a local CA).
# Read at build time only; it is not copied into the images. Set empty to turn off.
BUILD_CA ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
EXTRA_BUILD_ARGS ?=
PULL_TIMEOUT ?= 30

# The engine: the first of docker (with a reachable daemon), podman, buildah. Computed once, and only
# when a target needs it. Override with CONTAINER_ENGINE=docker|podman|buildah.
CONTAINER_ENGINE ?= $(eval CONTAINER_ENGINE := $(shell \
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; \
	elif command -v podman >/dev/null 2>&1; then echo podman; \
	elif command -v buildah >/dev/null 2>&1; then echo buildah; \
	else echo none; fi))$(CONTAINER_ENGINE)

IMG_CA_MOUNT = $(if $(BUILD_CA),-v $(call quote,BUILD_CA):/run/host-ca.crt:ro)
IMG_BUILD_docker = docker build
IMG_BUILD_podman = podman build --layers --isolation $(call quote,BUILD_ISOLATION) $(IMG_CA_MOUNT)
IMG_BUILD_buildah = buildah bud --layers --isolation $(call quote,BUILD_ISOLATION) $(IMG_CA_MOUNT)
IMG_BUILD = $(IMG_BUILD_$(CONTAINER_ENGINE)) --build-arg BASE_IMAGE=$(call quote,BASE_IMAGE) \
	$(call quote_each,$(EXTRA_BUILD_ARGS))
# The local base image is made on demand when a build asks for it; any other is checked first.
IMG_BASE_DEP = $(if $(filter $(BASE_IMAGE) $(BASE_IMAGE):latest,$(LOCAL_BASE_IMAGE)),base-image,base-image-check)

.PHONY: build build-training build-serving base-image base-image-check container-test container-tools images-engine

images-engine:
	@case $(call quote,CONTAINER_ENGINE) in docker|podman|buildah) echo "container engine: "$(call quote,CONTAINER_ENGINE);; \
	  *) echo "no container engine: install docker, podman or buildah (apt-get install -y buildah podman)" >&2; exit 1;; esac

# Fast, before any build: is BASE_IMAGE here or pullable? Else stop with the command that uses the local base.
base-image-check: images-engine
	@PULL_TIMEOUT=$(call quote,PULL_TIMEOUT) scripts/check_base_image.sh $(call quote,CONTAINER_ENGINE) \
		$(call quote,BASE_IMAGE) $(call quote,LOCAL_BASE_IMAGE) $(call quote_each,$(or $(firstword $(MAKECMDGOALS)),build))

IMG_BUILD_TRAINING = $(IMG_BUILD) -f docker/training.Dockerfile \
	--build-arg BAKE_RESNET50_WEIGHTS=$(call quote,BAKE_RESNET50_WEIGHTS) \
	-t $(call quote,TRAINING_IMAGE):$(call quote,TAG) -t $(call quote,TRAINING_IMAGE):latest .
IMG_BUILD_SERVING = $(IMG_BUILD) -f docker/serving.Dockerfile -t $(call quote,SERVING_IMAGE):$(call quote,TAG) \
	-t $(call quote,SERVING_IMAGE):latest .

# One after the other (also under make -j): the serving build reuses the torch layers the training
# build just made.
build: images-engine $(IMG_BASE_DEP)  ## training + serving images (docker, podman or buildah); here: BASE_IMAGE=localhost/debian-bookworm-minbase
	$(IMG_BUILD_TRAINING)
	$(IMG_BUILD_SERVING)

build-training: images-engine $(IMG_BASE_DEP)  ## the training image only [BAKE_RESNET50_WEIGHTS=1]
	$(IMG_BUILD_TRAINING)

build-serving: images-engine $(IMG_BASE_DEP)  ## the serving image only
	$(IMG_BUILD_SERVING)

# Debian packages for building and running the images without a docker daemon (root; apt-get):
# buildah and podman (not needed where a docker daemon answers) and debootstrap (for base-image).
# Installs only what is missing, so it costs nothing on a machine that has them.
container-tools:  ## install buildah, podman and debootstrap with apt-get where missing (root)
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then need=debootstrap; \
	 else need="buildah podman debootstrap"; fi; \
	missing=$$(for p in $$need; do command -v $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	    echo "missing: $$missing; install them (Debian: sudo apt-get install -y $$missing)" >&2; exit 1; fi; \
	  echo "installing" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

base-image: container-tools  ## Debian bookworm base image from debootstrap, no registry needed (FORCE=1 rebuilds)
	docker/make_base_image.sh $(call quote,LOCAL_BASE_IMAGE)

container-test: container-tools build  ## build, then train, serve, invoke and SIGTERM the real images (a few minutes)
	CONTAINER_ENGINE=$(call quote,CONTAINER_ENGINE) TRAINING_IMAGE=$(call quote,TRAINING_IMAGE):$(call quote,TAG) \
		SERVING_IMAGE=$(call quote,SERVING_IMAGE):$(call quote,TAG) \
		tests/container/run_container_test.sh
