#!/usr/bin/env bash
# Build a Debian bookworm base image without any container registry:
#   debootstrap --variant=minbase bookworm ROOTFS <mirror>   (~40 s)
#   tar -C ROOTFS -c . | podman import - NAME               (or buildah)
# Then: make build BASE_IMAGE=localhost/debian-bookworm-minbase
#
# Usage: docker/make_base_image.sh [IMAGE_NAME]
#   IMAGE_NAME  default localhost/debian-bookworm-minbase:latest
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian), SUITE (bookworm), FORCE=1 to rebuild
#        an image that already exists. Needs root, debootstrap and one of podman / buildah / docker.
set -euo pipefail

NAME="${1:-localhost/debian-bookworm-minbase:latest}"
SUITE="${SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

have() { command -v "$1" >/dev/null 2>&1; }

if have podman; then
    ENGINE=podman
elif have buildah; then
    ENGINE=buildah
elif have docker && docker info >/dev/null 2>&1; then
    ENGINE=docker
else
    echo "make_base_image: need podman, buildah or a working docker (apt-get install -y podman buildah)" >&2
    exit 1
fi

image_exists() {
    case "$ENGINE" in
        podman)  podman image exists "$NAME" ;;
        buildah) buildah inspect --type image "$NAME" >/dev/null 2>&1 ;;
        docker)  docker image inspect "$NAME" >/dev/null 2>&1 ;;
    esac
}

if [ "${FORCE:-0}" != 1 ] && image_exists; then
    echo "make_base_image: $NAME already exists ($ENGINE); FORCE=1 rebuilds it"
    exit 0
fi

if ! have debootstrap; then
    echo "make_base_image: debootstrap missing (apt-get install -y debootstrap)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "make_base_image: debootstrap needs root" >&2
    exit 1
fi

ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/rootfs-${SUITE}.XXXXXX")"
trap 'rm -rf --one-file-system "$ROOTFS"' EXIT

start=$(date +%s)
echo "make_base_image: debootstrap $SUITE -> $ROOTFS ($MIRROR)"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR"

# Trim what a container does not need and keep the image small and deterministic.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/*.log \
       "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
# The host's resolver config must not leak into the image.
: > "$ROOTFS/etc/resolv.conf"
# Same sources as the official debian:bookworm images (main + updates + security).
cat > "$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF

CHANGES=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]')
echo "make_base_image: importing as $NAME with $ENGINE"
case "$ENGINE" in
    podman)  tar -C "$ROOTFS" --numeric-owner -c . | podman import "${CHANGES[@]}" - "$NAME" ;;
    docker)  tar -C "$ROOTFS" --numeric-owner -c . | docker import "${CHANGES[@]}" - "$NAME" ;;
    buildah)
        # buildah has no import: start from scratch and copy the tree in.
        ctr=$(buildah from scratch)
        mnt=$(buildah mount "$ctr")
        tar -C "$ROOTFS" --numeric-owner -c . | tar -C "$mnt" --numeric-owner -x
        buildah umount "$ctr"
        buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$ctr"
        buildah commit --rm "$ctr" "$NAME"
        ;;
esac
echo "make_base_image: $NAME built in $(( $(date +%s) - start )) s"
