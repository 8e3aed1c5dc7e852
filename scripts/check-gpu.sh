#!/usr/bin/env bash
# `npm run check:gpu`: the WebGPU path on a machine with an NVIDIA GPU, in one command, within
# 10 minutes. Takes what a bare machine lacks from .gpu-kit/ (scripts/gpu-kit.sh packs it: a Node
# binary, the Vulkan loader, node_modules), points Vulkan at NVIDIA's driver, then
# scripts/check-gpu.ts asserts the adapter is the GPU (not lavapipe), runs the WebGPU parity and
# engine tests, bench:engine on the shipped bundles and, where python3 has torch and onnx, on a
# random-weight bundle at the paper's CALM-M size; one JSON of results goes to $OUT/gpu-check.json
# (OUT defaults to the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu-kit
OUT=${OUT:-$PWD}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

unxz_to() { # file.xz -> stdout, with python's lzma where xz is missing
  if command -v xz > /dev/null; then xz -dc "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi
}

NODE=node
if ! command -v node > /dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 22 ? 1 : 0)'; then
  unxz_to "$KIT"/node-*.xz > "$WORK/node"
  chmod +x "$WORK/node"
  NODE=$WORK/node
fi
if [ ! -d node_modules ]; then unxz_to "$KIT/node_modules.tar.xz" | tar -x; fi
if ! ldconfig -p 2> /dev/null | grep -q 'libvulkan.so.1 '; then
  if command -v dpkg > /dev/null; then dpkg -x "$KIT/libvulkan1.deb" "$WORK/vk"
  else # a .deb is an ar archive holding data.tar.*
    python3 - "$KIT/libvulkan1.deb" "$WORK/vk" << 'EOF'
import io, sys, tarfile
data = open(sys.argv[1], 'rb').read()
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip('/'), int(data[pos + 48:pos + 58])
    if name.startswith('data.tar'):
        tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])).extractall(sys.argv[2])
    pos += 60 + size + (size % 2)
EOF
  fi
  export LD_LIBRARY_PATH=$WORK/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$ICD" ]; then export VK_DRIVER_FILES=$ICD; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
timeout 570 "$NODE" --import tsx scripts/check-gpu.ts "$OUT/gpu-check.json"
