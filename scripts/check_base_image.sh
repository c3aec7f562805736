#!/bin/bash
# Is the base image of the image builds here, or can it be pulled? Decided in seconds, before a build
# starts: an image already present is used; else one pull is tried for at most PULL_TIMEOUT seconds
# (a machine without registry access fails or hangs there). If that fails, stop with the exact command
# that builds the local Debian base (debootstrap, no registry needed) and uses it.
#
#   scripts/check_base_image.sh ENGINE BASE_IMAGE LOCAL_BASE_IMAGE MAKE_TARGET
set -u
engine=$1 image=$2 local_base=$3 target=${4:-build}
timeout_s=${PULL_TIMEOUT:-30}

present() {
    case "$engine" in
        docker) docker image inspect "$1" >/dev/null 2>&1 ;;
        podman) podman image exists "$1" >/dev/null 2>&1 ;;
        buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

if present "$image"; then
    echo "base image $image: present"
    exit 0
fi
echo "base image $image: not here; pulling it (at most ${timeout_s}s)"
if timeout "$timeout_s" "$engine" pull "$image" >/dev/null 2>&1; then
    echo "base image $image: pulled"
    exit 0
fi
if present "$local_base"; then
    command="make $target BASE_IMAGE=$local_base"
else
    command="make base-image && make $target BASE_IMAGE=$local_base"
fi
{
    echo "error: cannot pull the base image $image with $engine within ${timeout_s}s (no registry access?)."
    echo "Build on the local Debian base instead (debootstrap, no registry needed):"
    echo "    $command"
} >&2
exit 1
