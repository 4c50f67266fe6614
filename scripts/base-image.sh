#!/bin/sh
# The Debian base image for the project image, printed on stdout (logs go to stderr).
# Usage: scripts/base-image.sh WANTED LOCAL
#   WANTED (e.g. debian:bookworm-slim): used when the daemon has it or can pull it.
#   LOCAL  (e.g. microlambda-base:bookworm): otherwise made once from Debian's packages with debootstrap
#          (minbase) and `docker import`; kept afterwards, so a second run does nothing.
# debootstrap needs root and the Debian mirror (MIRROR, default http://deb.debian.org/debian).
set -eu
wanted=$1
local_tag=$2
mirror=${MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$wanted" >/dev/null 2>&1; then echo "$wanted"; exit 0; fi
if docker image inspect "$local_tag" >/dev/null 2>&1; then
  echo "base-image: $local_tag exists" >&2; echo "$local_tag"; exit 0
fi
if docker pull -q "$wanted" >&2 2>/dev/null; then echo "$wanted"; exit 0; fi

echo "base-image: cannot pull $wanted (no registry): making $local_tag with debootstrap from $mirror" >&2
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || {
  echo "base-image: debootstrap is missing (Debian: apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }
root=$(mktemp -d /tmp/microlambda-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
PATH=$PATH:/usr/sbin debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
# What the official image also drops: apt lists and caches (the Dockerfile runs apt-get update itself).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$local_tag" >&2
echo "$local_tag"
