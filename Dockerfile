# calm-serve container images.
#
#   docker build -t calm-serve:0.1.0 .                           # CPU (the default, last stage)
#   docker build --target cuda -t calm-serve:0.1.0-cuda .        # NVIDIA GPU: CUDA 12 + cuDNN 9
#
#   docker run --rm -p 8000:8000 --stop-timeout 45 calm-serve:0.1.0
#   docker run --rm -p 8000:8000 --stop-timeout 45 --gpus all calm-serve:0.1.0-cuda
#
# Both images serve the bundled CALM model (models/bundles/calm-k4; the token baseline
# models/bundles/ar-baseline is there too: -e CALM_MODEL=models/bundles/ar-baseline) with
# `node dist/cli.js serve`, the same command as `npm start`. Every setting is a CALM_*
# variable (README.md, "Configuration"). On SIGTERM the server drains for CALM_DRAIN_GRACE_MS
# (30 s): give `docker stop`/`--stop-timeout` more than that, Docker's default is 10 s.
# The Kubernetes manifests are in deploy/ (deploy/README.md).

# The active Node.js LTS line (package.json engines: 22 or later).
ARG NODE_VERSION=24
# The CUDA image runs float16 bundles, whose inputs onnxruntime-node 1.30 cannot read on Node 24
# (it reads a Float16Array as 0 bytes: microsoft/onnxruntime#32323); it keeps Node 22, the other
# LTS line, until the runtime works around that.
ARG CUDA_NODE_VERSION=22
# CUDA 12 with cuDNN 9 is what onnxruntime-node's CUDA 12 provider is built against.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

# ---- node: the Node.js base of the build stages and of the CPU image --------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS node
WORKDIR /app

# ---- node-cuda: the Node.js binary of the CUDA image --------------------------------------------
FROM node:${CUDA_NODE_VERSION}-bookworm-slim AS node-cuda

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

# ---- cuda: the GPU image ----------------------------------------------------------------------
# Needs an NVIDIA driver for CUDA 12 on the host and the NVIDIA container toolkit (docker run
# --gpus all; in Kubernetes the NVIDIA device plugin and nvidia.com/gpu, deploy/overlays/gpu).
# The image brings CUDA 12 and cuDNN 9 and sets CALM_DEVICE=cuda (`calm serve --device cuda`);
# -e CALM_DEVICE=cpu runs it on the CPU.
FROM ${CUDA_IMAGE} AS cuda
# Node.js is a single binary: take it from the official image instead of a distribution package.
COPY --from=node-cuda /usr/local/bin/node /usr/local/bin/node
RUN groupadd --gid 1000 calm && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin calm
WORKDIR /app
ENV NODE_ENV=production \
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
CMD ["node", "dist/cli.js", "serve"]

# ---- cpu: the default image -------------------------------------------------------------------
FROM node AS cpu
# Defaults through CALM_HOST/CALM_PORT rather than HOST/PORT: the server reads PORT and HOST
# first, so `-e PORT=9000` and `-e CALM_PORT=9000` both still work.
ENV NODE_ENV=production \
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
CMD ["node", "dist/cli.js", "serve"]
