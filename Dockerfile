# dmaemu container image. Multi-stage:
#   build      - npm ci with dev dependencies, tsc into dist/ (tsconfig.build.json: the service
#                only, no tests, benchmarks, examples or client)
#   prod-deps  - npm ci --omit=dev (production dependencies only)
#   runtime    - base image + production node_modules + dist/ + package.json, as user `node`
#
#   docker build -t dmaemu .            (BuildKit: the default builder since Docker 23)
#   docker run --rm -p 127.0.0.1:3000:3000 dmaemu
#
# BASE_IMAGE is an argument so that hosts without access to a public registry can substitute
# a locally built Node 20 image (scripts/container-smoke.sh does). Whatever replaces it must
# provide /bin/sh, node and npm on PATH, and a non-root user named `node`, as the official
# node images do.
ARG BASE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /app
# Optional extra CA for a TLS-intercepting proxy in front of the npm registry, given as a build
# secret so it is never stored in a layer:  --secret id=npm_ca,src=/path/to/ca.pem
# (a secret mount is optional by default: without --secret the file is simply absent).
# Proxies: the predefined build args HTTP_PROXY / HTTPS_PROXY / NO_PROXY work as usual.
# --ignore-scripts: the "prepare" script (build the service and the client) needs the sources,
# which are copied after this layer; `npm run build:image` below builds what the image runs.
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build:image

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
# No lifecycle scripts: none of the production dependencies needs one, and none should run.
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# The repository has no public address yet: pass --build-arg IMAGE_SOURCE=<repo URL>.
ARG IMAGE_SOURCE=unknown
LABEL org.opencontainers.image.title="dmaemu" \
      org.opencontainers.image.description="The Linux DMA API on an emulated IOMMU, over REST: which segments, which IOVAs, which syncs Linux would really give your buffers" \
      org.opencontainers.image.source="${IMAGE_SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DMAEMU_DATA_DIR=/data

WORKDIR /app
# Everything is owned by root and only readable by the service user: the service writes only
# its op logs, under /data, so its own code and dependencies cannot be changed from inside the
# container.
# package.json is needed at run time: its "type": "module" makes node load dist/ as ESM.
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The explorer's static files (GET /ui), found beside dist/ by routes/ui.ts.
COPY --from=build /app/ui ./ui

# Sessions persist here (docs/persistence.md): one op log per session, replayed on start, so
# they survive a restart, a crash or a reschedule that keeps the volume. Owned by `node`; a
# named volume mounted here starts with this ownership. -e DMAEMU_DATA_DIR=off: memory only.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

USER node
EXPOSE 3000

# Uses node itself (no curl/wget in the image). PORT is read at check time, so -e PORT=... works.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form, no shell and no init: node is PID 1 and receives SIGTERM itself. The server
# installs its own SIGINT/SIGTERM handlers (close Fastify, let in-flight requests finish, exit 0),
# so PID 1's "no default signal actions" rule does not matter, and it spawns no child processes,
# so there are no zombies for an init to reap. The V8 flags (same as `npm start`): see
# load/README.md (with a million live mappings, V8 would otherwise allocate every new mapping
# straight into old space, and full GCs would cost 10x per map/unmap pair; a 64 MB young
# generation makes scavenges of the per-request garbage rarer).
STOPSIGNAL SIGTERM
CMD ["node", "--max-semi-space-size=64", "--no-allocation-site-pretenuring", "dist/src/service/server.js"]
