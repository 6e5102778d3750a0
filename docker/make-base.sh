#!/usr/bin/env bash
# Makes a Node.js base image for docker/Dockerfile where Docker Hub cannot be reached: a minimal
# Debian of this machine's release (mmdebstrap, from the Debian mirror this machine's apt uses) with
# this machine's Node.js, npm and Node headers copied in under the same prefix, a user `node`
# (uid 1000) as in the official image, and this machine's extra CA certificates, so that the
# build's `npm ci` reaches the package registry as this machine does.
#
#   docker/make-base.sh [TAG]          (default: site/node:<this Node.js major>)
#   docker build --build-arg BASE_IMAGE=TAG -f docker/Dockerfile -t oci-registry .
#
# Needs mmdebstrap and docker (DOCKER_HOST is honoured); run as root or with docker's rights.
set -euo pipefail

tag=${1:-site/node:$(node -p 'process.versions.node.split(".")[0]')}
node=$(readlink -f "$(command -v node)")
prefix=$(dirname "$(dirname "$node")")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for file in "$node" "$prefix/include/node" "$prefix/lib/node_modules/npm" "$prefix/bin/npm" "$prefix/bin/npx" "$prefix/etc/npmrc"; do
  if [ -e "$file" ]; then printf '%s\n' "${file#/}"; fi
done > "$work/node-files.txt"

release=$(. /etc/os-release && echo "${VERSION_CODENAME:?/etc/os-release names no Debian release}")
mirror=
for sources in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  [ -f "$sources" ] || continue
  mirror=$(grep -m1 -oP '^URIs:\s*\K\S+/debian(?=\s*$)' "$sources" || grep -m1 -oP '^deb\s+(\[[^\]]*\]\s+)?\K\S+/debian(?=\s)' "$sources" || true)
  [ -n "$mirror" ] && break
done
mirror=${mirror:-http://deb.debian.org/debian}

hooks=()
extra=/usr/local/share/ca-certificates
if compgen -G "$extra/*.crt" >/dev/null; then
  hooks+=("--customize-hook=cp $extra/*.crt \"\$1$extra/\" && chroot \"\$1\" update-ca-certificates")
fi

mmdebstrap --variant=minbase --include=ca-certificates \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  "--customize-hook=tar -C / -c -T $work/node-files.txt | tar -C \"\$1\" -x" \
  "${hooks[@]}" \
  '--customize-hook=chroot "$1" groupadd --gid 1000 node' \
  '--customize-hook=chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
  "$release" "$work/rootfs.tar" "$mirror"
docker import --change 'CMD ["node"]' "$work/rootfs.tar" "$tag" >/dev/null
echo "$tag"
