# calm-serve container images.
#
#   docker build -t calm-serve:0.1.0 .                           # CPU (the default, last stage)
#   docker build --target gpu -t calm-serve:0.1.0-gpu .          # GPU: WebGPU, on Vulkan
#   docker build --target cuda -t calm-serve:0.1.0-cuda .        # NVIDIA GPU: CUDA 12 + cuDNN 9
#
#   docker run --rm -p 8000:8000 --stop-timeout 45 calm-serve:0.1.0
#   docker run --rm -p 8000:8000 --stop-timeout 45 --gpus all calm-serve:0.1.0-gpu
#   docker run --rm -p 8000:8000 --stop-timeout 45 --gpus all calm-serve:0.1.0-cuda
#
# Every image serves the bundled CALM model (models/bundles/calm-k4; the token baseline
# models/bundles/ar-baseline is there too: -e CALM_MODEL=models/bundles/ar-baseline) with
# `node --max-semi-space-size=2 dist/cli.js serve` and MALLOC_ARENA_MAX=2, the same as `npm start`.
# Every setting is a CALM_* variable (README.md, "Configuration"). On SIGTERM the server drains
# for CALM_DRAIN_GRACE_MS (30 s): give `docker stop`/`--stop-timeout` more than that, Docker's
# default is 10 s. The Kubernetes manifests are in deploy/ (deploy/README.md).

# The active Node.js LTS line (package.json engines: 22 or later), for every image.
ARG NODE_VERSION=24
# CUDA 12 with cuDNN 9 is what onnxruntime-node's CUDA 12 provider is built against.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

# ---- node: the Node.js base of the build stages, the CPU and gpu images, the cuda image's node --
FROM node:${NODE_VERSION}-bookworm-slim AS node
WORKDIR /app

# ---- build: dev dependencies and the TypeScript compiler, dist/ out ---------------------------
FROM node AS build
COPY package.json package-lock.json ./
# --ignore-scripts: the package's `prepare` script would compile src/, which is copied below so
# that this layer stays cached while only the sources change; it also keeps onnxruntime-node's
# install step (a CUDA download) off whatever npm the image has (package.json's allowScripts
# denies it only from npm 11.16 on).
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- deps: production dependencies only (no TypeScript, tsx or test packages) ----------------
# onnxruntime-node carries its native runtime for every OS and CPU (about 310 MB); only this
# platform's (about 45 MB) is kept.
FROM node AS deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts \
 && cd node_modules/onnxruntime-node/bin/napi-v6 \
 && for d in */*; do [ "$d" = "linux/$(node -p process.arch)" ] || rm -rf "$d"; done \
 && cd /app && npm cache clean --force

# ---- cuda-deps: the same, plus onnxruntime-node's CUDA execution provider ---------------------
# The npm package ships the CPU runtime only; its install script fetches
# libonnxruntime_providers_{cuda,shared,tensorrt}.so for CUDA 12 from NuGet at build time
# (the build needs network access there; linux/amd64 only, as the provider is). The script is run
# directly: `npm rebuild` would skip it, as package.json's allowScripts denies it.
FROM deps AS cuda-deps
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
 && npm cache clean --force

# ---- cuda: the GPU image on onnxruntime's CUDA provider (the alternative to `gpu`) -------------
# Slower than the gpu image by construction: in Node's onnxruntime binding every input and output
# of a CUDA session is a host tensor, copied to the GPU and back on every call, so the whole KV
# pool (CALM_KV_CACHE_BYTES, used or not) is uploaded on every backbone call and the head's
# latents come down and go back up before the decoder (docs/gpu.md, "CUDA"). Needs an NVIDIA
# driver for CUDA 12 on the host and the NVIDIA container toolkit (docker run --gpus all; in
# Kubernetes the NVIDIA device plugin and nvidia.com/gpu, deploy/overlays/gpu). The image brings
# CUDA 12 and cuDNN 9 and sets CALM_DEVICE=cuda; -e CALM_DEVICE=cpu runs it on the CPU.
FROM ${CUDA_IMAGE} AS cuda
# Node.js is a single binary: take it from the official image instead of a distribution package.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 1000 calm && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin calm
WORKDIR /app
# MALLOC_ARENA_MAX=2 and CMD's --max-semi-space-size=2 hold the server's memory growth over many
# requests at no throughput cost (docs/benchmarks.md, "Memory over many requests").
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    CALM_HOST=0.0.0.0 \
    CALM_PORT=8000 \
    CALM_DEVICE=cuda \
    CUDA_CACHE_PATH=/tmp/cuda-cache
COPY package.json ./
COPY --from=cuda-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY models/bundles ./models/bundles
USER 1000:1000
EXPOSE 8000
STOPSIGNAL SIGTERM
# The model loads in a few seconds; a first CUDA start can take longer, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || process.env.CALM_PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--max-semi-space-size=2", "dist/cli.js", "serve"]

# ---- gpu: the GPU image on onnxruntime's WebGPU provider --------------------------------------
# onnxruntime-node bundles the WebGPU provider (Dawn, on Vulkan), so this is the CPU image plus
# the Vulkan loader (Debian's libvulkan1); the GPU's Vulkan driver comes from the host. The KV
# pool stays in GPU memory and a decode step moves a few kilobytes (docs/gpu.md).
# - NVIDIA: `docker run --gpus all` with the NVIDIA container toolkit mounts the driver's Vulkan
#   ICD (nvidia_icd.json and its libraries) because NVIDIA_DRIVER_CAPABILITIES below includes
#   `graphics`; in Kubernetes the node's toolkit does the same for a pod given nvidia.com/gpu
#   (deploy/overlays/gpu).
# - AMD and Intel: Mesa's drivers (RADV, ANV) go into a derived image, and the container gets
#   the GPU with `--device /dev/dri --group-add <gid of the host's render group>`:
#     FROM calm-serve:0.1.0-gpu
#     USER root
#     RUN apt-get update && apt-get install -y --no-install-recommends mesa-vulkan-drivers && rm -rf /var/lib/apt/lists/*
#     USER 1000:1000
#   That is bookworm's Mesa 22.3; for Mesa 25 (the version the tests run on, as lavapipe) add the
#   bookworm-backports source (as .ci/run does) and install with `-t bookworm-backports`.
# Without a Vulkan adapter the server refuses to start and says what to install;
# -e CALM_DEVICE=cpu runs the image on the CPU.
FROM node AS gpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 \
 && rm -rf /var/lib/apt/lists/*
# XDG_CACHE_HOME: the Vulkan drivers' shader caches (NVIDIA's, Mesa's) go to the writable /tmp,
# the root filesystem being read-only. MALLOC_ARENA_MAX: see the cuda stage.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    CALM_HOST=0.0.0.0 \
    CALM_PORT=8000 \
    CALM_DEVICE=webgpu \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    XDG_CACHE_HOME=/tmp/cache
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY models/bundles ./models/bundles
USER 1000:1000
EXPOSE 8000
STOPSIGNAL SIGTERM
# The start probes the adapter and the first calls compile shaders, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || process.env.CALM_PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--max-semi-space-size=2", "dist/cli.js", "serve"]

# ---- cpu: the default image -------------------------------------------------------------------
FROM node AS cpu
# Defaults through CALM_HOST/CALM_PORT rather than HOST/PORT: the server reads PORT and HOST
# first, so `-e PORT=9000` and `-e CALM_PORT=9000` both still work.
# MALLOC_ARENA_MAX=2 and CMD's --max-semi-space-size=2 hold the server's memory growth over many
# requests at no throughput cost (docs/benchmarks.md, "Memory over many requests").
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    CALM_HOST=0.0.0.0 \
    CALM_PORT=8000
# The app is owned by root and read-only to the server's user (uid 1000, `node`): the server
# writes nothing, so it runs with a read-only root filesystem too.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY models/bundles ./models/bundles
USER 1000:1000
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || process.env.CALM_PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--max-semi-space-size=2", "dist/cli.js", "serve"]
