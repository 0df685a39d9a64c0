#!/bin/sh
# Build the truthplane sandbox root filesystem as a tarball, for `docker import` where no image
# registry is reachable: Debian minbase with python3 and a non-root user (uid 1000) owning
# /workspace. The tarball is the cache: if OUTPUT already exists nothing is rebuilt.
#
# usage: build-rootfs.sh OUTPUT.tar [--data-science]
# env:   TRUTHPLANE_DEBIAN_SUITE (bookworm), TRUTHPLANE_DEBIAN_MIRROR (http://deb.debian.org/debian)
set -eu

out=${1:?usage: build-rootfs.sh OUTPUT.tar [--data-science]}
data_science=${2:-}
suite=${TRUTHPLANE_DEBIAN_SUITE:-bookworm}
mirror=${TRUTHPLANE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -s "$out" ]; then
    echo "sandbox rootfs: reusing $out"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 3; }
[ "$(id -u)" = 0 ] || { echo "building the rootfs needs root (debootstrap): run it with sudo" >&2; exit 3; }

packages=python3,python-is-python3
if [ "$data_science" = "--data-science" ]; then
    packages=$packages,python3-numpy,python3-pandas,python3-scipy,python3-sklearn
fi

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs

echo "sandbox rootfs: debootstrap $suite (minbase, $packages) from $mirror"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror"

echo 'sandbox:x:1000:1000:truthplane sandbox:/workspace:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'sandbox:x:1000:' >>"$root/etc/group"
echo 'sandbox:!:19000:0:99999:7:::' >>"$root/etc/shadow"
mkdir -p "$root/workspace"
chown 1000:1000 "$root/workspace"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/tmp/* "$root"/root/.bash_history

tar --numeric-owner -C "$root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"
echo "sandbox rootfs: wrote $out"
