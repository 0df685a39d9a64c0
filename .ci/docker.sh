#!/usr/bin/env bash
# Docker for the executor tests: start dockerd if it is not running, build the sandbox image if it
# is absent (debootstrap rootfs + docker import: no registry needed; the rootfs tarball is cached in
# /var/cache/truthplane so later builds take seconds). Idempotent.
# Needs the Debian packages docker.io and debootstrap (and bubblewrap for the local executor).
set -euo pipefail
cd "$(dirname "$0")/.."

image=${TRUTHPLANE_SANDBOX_IMAGE:-truthplane-sandbox:latest}
log=${TRUTHPLANE_DOCKERD_LOG:-/var/log/truthplane-dockerd.log}

engine_up() {
  python3 -c 'import docker, sys; sys.exit(0 if docker.from_env(timeout=3).ping() else 1)' >/dev/null 2>&1
}

image_present() {
  python3 -c 'import docker, sys; docker.from_env(timeout=10).images.get(sys.argv[1])' "$image" >/dev/null 2>&1
}

if ! engine_up; then
  command -v dockerd >/dev/null || { echo "docker.sh: dockerd not found: apt-get install docker.io" >&2; exit 1; }
  echo "docker.sh: starting dockerd (log: $log)"
  mkdir -p "$(dirname "$log")"
  # no iptables and no bridge: jobs run with network none; this also works inside VMs without netfilter
  setsid nohup dockerd --iptables=false --bridge=none >>"$log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    engine_up && break
    sleep 0.5
  done
  if ! engine_up; then
    echo "docker.sh: dockerd did not come up within 60 s; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
fi
echo "docker.sh: engine up"

if image_present; then
  echo "docker.sh: $image present"
else
  echo "docker.sh: building $image from a debootstrap rootfs (first time: a few minutes)"
  python3 -m truthplane sandbox build --executor docker --from rootfs --tag "$image"
fi
