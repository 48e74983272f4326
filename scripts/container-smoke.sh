#!/usr/bin/env bash
# Container smoke test: builds the Dockerfile with podman, runs the image, and checks that it
# really serves and really stops:
#   1. installs podman (and debootstrap) from Debian's packages if they are missing;
#   2. builds a local base image standing in for node:20-bookworm-slim (see "Base image");
#   3. builds the Dockerfile against it (--build-arg BASE_IMAGE=...) and checks the image's
#      metadata: non-root user, HEALTHCHECK, EXPOSE 3000, OCI labels, no dev deps, no sources;
#   4. runs it with the port published on 127.0.0.1, waits until it is healthy (the image's
#      own HEALTHCHECK via `podman healthcheck run`, and GET /healthz from the host);
#   5. creates a session, maps a scatterlist, deletes the session (API.md); the container runs
#      with DMAEMU_MAX_SESSIONS=1, so a second session must be refused with 429 (the limits
#      reach the service through the container's environment); /openapi.json, /metrics and
#      /docs answer 200;
#      then restarts the container and finds that session again, with its mapping (the op log
#      lives in the image's /data volume);
#   6. sends SIGTERM and checks the container exits with code 0 within 10 s;
#   7. removes the container (and the app image unless KEEP_IMAGE=1).
# Exits non-zero with a "FAIL:" message on the first thing that goes wrong.
#
# Why a local base image: public image registries are not reachable from the machines this
# project runs on, so `FROM node:20-bookworm-slim` cannot be pulled. Debian's package mirrors
# are reachable, so the base is made the way debian:bookworm-slim is made, with
# `debootstrap --variant=minbase bookworm`, and this host's Node 20 (binary + bundled npm) is
# put in /usr/local like the official node image does, with a `node` user (uid/gid 1000).
# That is: the same Debian release, the same Node major, the same layout and user as the
# official image. On a host that can pull node:20-bookworm-slim, run with BASE_IMAGE set to it
# (or use plain `docker build .`) and step 2 is skipped.
#
# Podman here (Debian bookworm: podman 4.3.1, rootful, no systemd, cgroup v1 with a cgroup2
# "unified" hierarchy that has the hugetlb controller, no CAP_SYS_RESOURCE). Storage (overlay),
# cgroup manager (cgroupfs), events (file) and networking (netavark, `-p 127.0.0.1:PORT:3000`,
# and the build's RUN steps on the default network) all work with the defaults. What does not,
# and what this script does about it (it probes, in this order, and uses the first that runs a
# container; the log says which):
#   1. no flags;
#   2. --ulimit nofile=N:N --ulimit nproc=M:M (on build and run): podman asks the runtime for
#      nofile=1048576 and a huge nproc, and without CAP_SYS_RESOURCE setrlimit fails with
#      "setrlimit `RLIMIT_NOFILE`: Operation not permitted". N is this shell's hard nofile;
#      M is its hard nproc capped at 32768, which is what conmon itself gets here;
#   3. the same plus `--runtime runc` (runc installed from Debian if missing): crun 1.8 refuses
#      "cgroups in hybrid mode not supported, drop all controllers from cgroupv2" here.
# On this machine (2026-11) it takes 3. Also always needed:
#   --format docker      on `podman build`: the default OCI image format has no HEALTHCHECK
#                        field, so podman would drop the Dockerfile's HEALTHCHECK.
#   --secret id=npm_ca   the npm registry is reached through a TLS-intercepting proxy whose CA
#                        is in this host's trust store, not in the image: the host's CA bundle
#                        is passed as a build secret (never stored in a layer) and the
#                        Dockerfile adds it with NODE_EXTRA_CA_CERTS for `npm ci` only.
# Healthchecks: without systemd podman 4.3 has no timer to run the HEALTHCHECK on its own
# schedule (it logs "unable to get systemd connection to add healthchecks"), so this script
# runs it with `podman healthcheck run`; Docker runs it by itself.
# PODMAN_FLAGS adds global flags, e.g. PODMAN_FLAGS="--storage-driver=vfs" where overlay fails.
#
# Environment knobs:
#   BASE_IMAGE      base for the Dockerfile (default localhost/dmaemu-node-base:20-bookworm,
#                   built here if absent; REBUILD_BASE=1 rebuilds it)
#   IMAGE           tag for the app image (default localhost/dmaemu:smoke)
#   KEEP_IMAGE=1    keep the app image afterwards
#   HOST_PORT       host port to publish on 127.0.0.1 (default: a free one)
#   DEBIAN_MIRROR   mirror for debootstrap (default: this host's apt mirror, else deb.debian.org)
#   NPM_CA_FILE     CA bundle for the build's npm (default: npm's cafile / NODE_EXTRA_CA_CERTS)
#   BUILD_NETWORK   network for the build's RUN steps (default: podman's default network)
#   SKIP_BUILD=1    reuse an existing $IMAGE instead of building it (with KEEP_IMAGE=1 before)
#   BUILD_CACHE=1   keep the build's intermediate layers (faster reruns; default: none kept)
set -euo pipefail

cd "$(dirname "$0")/.."

BASE_IMAGE=${BASE_IMAGE:-localhost/dmaemu-node-base:20-bookworm}
IMAGE=${IMAGE:-localhost/dmaemu:smoke}
CONTAINER=dmaemu-smoke-$$
BUILD_NETWORK=${BUILD_NETWORK:-}
RUN_FLAGS=()   # flags for podman build/run that this machine needs (probed below)
read -r -a PODMAN_GLOBAL <<<"${PODMAN_FLAGS:-}"
WORK=$(mktemp -d /tmp/dmaemu-smoke.XXXXXX)
T0=$(date +%s%N)

log() { printf '[smoke %6.1fs] %s\n' "$(( ($(date +%s%N) - T0) / 1000000 ))e-3" "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pm() { podman "${PODMAN_GLOBAL[@]}" "$@"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

cleanup() {
  local status=$?
  if pm container exists "$CONTAINER" 2>/dev/null; then
    if [ "$status" -ne 0 ]; then
      echo "--- container logs ($CONTAINER) ---" >&2
      pm logs "$CONTAINER" >&2 2>&1 || true
    fi
    pm rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_IMAGE:-0}" != 1 ] && pm image exists "$IMAGE" 2>/dev/null; then
    pm rmi -f "$IMAGE" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. tools ----------------------------------------------------------------------------------
need_apt=()
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ "$BASE_IMAGE" = localhost/dmaemu-node-base:20-bookworm ]; then
  command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "installing ${need_apt[*]} from Debian's packages"
  command -v apt-get >/dev/null 2>&1 || fail "need ${need_apt[*]} and there is no apt-get"
  apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || fail "apt-get install ${need_apt[*]} failed"
fi
command -v node >/dev/null 2>&1 || fail "node is needed on the host (JSON checks; base image)"
log "$(podman --version)"

# --- 2. base image -----------------------------------------------------------------------------
build_base() {
  local rootfs=$WORK/rootfs mirror node_bin npm_dir
  node_bin=$(readlink -f "$(command -v node)")
  "$node_bin" -e 'process.exit(process.versions.node.split(".")[0]==="20"?0:1)' \
    || fail "the host's node is $("$node_bin" --version), the base image wants Node 20"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [ -f "$npm_dir/package.json" ] || fail "cannot find npm's package folder (got $npm_dir)"
  mirror=${DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then
    mirror=$(grep -hoE '^URIs: *http[^ ]*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | head -1 | sed -E 's/^URIs: *//') || true
    mirror=${mirror:-http://deb.debian.org/debian}
  fi
  log "debootstrap --variant=minbase bookworm from $mirror (1-3 minutes, depending on the mirror)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
  # Slim it the way debian:bookworm-slim is: no package caches, lists, docs or man pages.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/tmp/* 2>/dev/null || true
  # Node as the official image lays it out: /usr/local/bin/node, npm in /usr/local/lib.
  # Its shared libraries (libstdc++, libgcc_s, libc) are Debian bookworm's, already there.
  install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" /bin/sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
    || fail "could not add the node user to the base image"
  chroot "$rootfs" /usr/local/bin/node --version >/dev/null || fail "node does not run in the base rootfs"
  log "importing the rootfs as $BASE_IMAGE"
  tar -C "$rootfs" --numeric-owner -cf - . | pm import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$("$node_bin" -p process.versions.node)" \
    --change 'CMD ["node"]' \
    --message "debootstrap minbase bookworm + host node $("$node_bin" --version)" \
    - "$BASE_IMAGE" >/dev/null || fail "podman import of the base rootfs failed"
}

if [ "${REBUILD_BASE:-0}" = 1 ] && pm image exists "$BASE_IMAGE"; then
  pm rmi -f "$BASE_IMAGE" >/dev/null
fi
if pm image exists "$BASE_IMAGE"; then
  log "base image $BASE_IMAGE already present (REBUILD_BASE=1 rebuilds it)"
elif [ "$BASE_IMAGE" = localhost/dmaemu-node-base:20-bookworm ]; then
  t=$(date +%s%N); build_base; log "base image built in $(ms_since "$t") ms"
else
  log "pulling $BASE_IMAGE"
  pm pull "$BASE_IMAGE" >/dev/null || fail "cannot pull $BASE_IMAGE"
fi

# --- what this podman needs to run a container here ------------------------------------------
probe_run() { pm run --rm --network none "$@" "$BASE_IMAGE" node -e 0 >"$WORK/probe.log" 2>&1; }
hard_nofile=$(ulimit -Hn); hard_nproc=$(ulimit -Hu)
ulimits=()
[ "$hard_nofile" != unlimited ] && ulimits+=(--ulimit "nofile=$hard_nofile:$hard_nofile")
if [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ]; then hard_nproc=32768; fi
ulimits+=(--ulimit "nproc=$hard_nproc:$hard_nproc")
if probe_run; then
  log "podman runs containers with its defaults"
elif probe_run "${ulimits[@]}"; then
  RUN_FLAGS=("${ulimits[@]}")
  log "podman needs ${RUN_FLAGS[*]} here"
else
  log "with --ulimit too, the default runtime failed: $(grep -v systemd "$WORK/probe.log" | tail -1)"
  if ! command -v runc >/dev/null 2>&1; then
    log "installing runc from Debian's packages (crun cannot run containers here)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null; } \
      || fail "apt-get install runc failed"
  fi
  PODMAN_GLOBAL+=(--runtime runc)
  probe_run "${ulimits[@]}" || { cat "$WORK/probe.log" >&2; fail "podman cannot run a container here, even with --runtime runc ${ulimits[*]}"; }
  RUN_FLAGS=("${ulimits[@]}")
  log "podman needs --runtime runc ${RUN_FLAGS[*]} here"
fi

# --- 3. build the Dockerfile -------------------------------------------------------------------
# The context is the work tree: say so in the label when it differs from HEAD.
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain -- src routes schemas package.json package-lock.json tsconfig.json 2>/dev/null)" ]; then
  revision=$revision-dirty
fi
build_args=(--format docker "${RUN_FLAGS[@]}" -f Dockerfile -t "$IMAGE"
  --build-arg "BASE_IMAGE=$BASE_IMAGE"
  --build-arg "VERSION=$(node -p 'require("./package.json").version')"
  --build-arg "REVISION=$revision"
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)")
[ -n "$BUILD_NETWORK" ] && build_args+=(--network "$BUILD_NETWORK")
# Without the cache, intermediate stage images are not kept (nothing left behind).
[ "${BUILD_CACHE:-0}" = 1 ] || build_args+=(--layers=false)
ca=${NPM_CA_FILE:-}
if [ -z "$ca" ]; then
  ca=$(npm config get cafile 2>/dev/null || true)
  [ "$ca" = null ] || [ "$ca" = undefined ] && ca=
  ca=${ca:-${NODE_EXTRA_CA_CERTS:-}}
fi
if [ -n "$ca" ]; then
  [ -s "$ca" ] || fail "CA file $ca is missing or empty"
  build_args+=(--secret "id=npm_ca,src=$ca")
  log "passing $ca to the build as secret npm_ca (for npm ci behind a TLS proxy)"
fi
for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy npm_config_registry; do
  [ -n "${!v:-}" ] && build_args+=(--build-arg "$v=${!v}")
done
if [ "${SKIP_BUILD:-0}" = 1 ] && pm image exists "$IMAGE"; then
  log "SKIP_BUILD=1: using the existing $IMAGE"
else
  log "podman build ${build_args[*]} ."
  t=$(date +%s%N)
  pm build "${build_args[@]}" . >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; fail "podman build failed (log above)"; }
  log "image built in $(ms_since "$t") ms"
fi
log "image: $(pm image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-12), $(pm image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

# --- metadata -----------------------------------------------------------------------------------
pm image inspect "$IMAGE" >"$WORK/inspect.json"
node - "$WORK/inspect.json" <<'EOF' || fail "image metadata check failed"
const [img] = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const c = img.Config ?? {};
const problems = [];
if (!c.User || ['root', '0', '0:0'].includes(c.User)) problems.push(`runs as root (User=${c.User})`);
// podman shows a docker-format image's HEALTHCHECK at the top level (and, with layers, in Config too).
const hc = (img.Healthcheck ?? c.Healthcheck)?.Test ?? [];
if (!hc.join(' ').includes('/healthz')) problems.push(`no HEALTHCHECK on /healthz (${JSON.stringify(hc)})`);
if (!c.ExposedPorts?.['3000/tcp']) problems.push('does not EXPOSE 3000');
if (!(c.Volumes ?? {})['/data']) problems.push(`no VOLUME /data (${JSON.stringify(c.Volumes)})`);
const env = Object.fromEntries((c.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
for (const [k, v] of Object.entries({ HOST: '0.0.0.0', PORT: '3000', NODE_ENV: 'production', DMAEMU_DATA_DIR: '/data' }))
  if (env[k] !== v) problems.push(`ENV ${k}=${env[k]} (want ${v})`);
// Exec form, node first and the server last (V8 flags in between are the image's business).
if (!Array.isArray(c.Cmd) || c.Cmd[0] !== 'node' || c.Cmd[c.Cmd.length - 1] !== 'dist/src/service/server.js' || (c.Entrypoint ?? []).length)
  problems.push(`CMD/ENTRYPOINT ${JSON.stringify(c.Entrypoint)} ${JSON.stringify(c.Cmd)}`);
const labels = c.Labels ?? {};
for (const l of ['title', 'description', 'source', 'licenses', 'version'])
  if (!labels[`org.opencontainers.image.${l}`]) problems.push(`label org.opencontainers.image.${l} missing`);
if (problems.length) { console.error(problems.join('\n')); process.exit(1); }
console.log(`  user=${c.User} cmd=${JSON.stringify(c.Cmd)} healthcheck=yes expose=3000 labels: ` +
  ['title', 'version', 'licenses', 'revision'].map((l) => `${l}=${labels[`org.opencontainers.image.${l}`]}`.slice(0, 40)).join(' '));
EOF
# What is inside /app: compiled output and production dependencies, nothing else.
pm run --rm --network none --no-healthcheck "${RUN_FLAGS[@]}" "$IMAGE" node -e '
  const fs = require("fs"); const p = [];
  const top = fs.readdirSync("/app").sort().join(",");
  if (top !== "dist,node_modules,package.json,ui") p.push("/app holds " + top); // ui/: the explorer pages (GET /ui)
  for (const d of ["typescript", "tap", "eslint", "tsx", "@types/node"])
    if (fs.existsSync("/app/node_modules/" + d)) p.push("dev dependency " + d + " present");
  if (!fs.existsSync("/app/node_modules/fastify")) p.push("fastify missing");
  const ts = []; (function walk(d) { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const f = d + "/" + e.name; if (e.isDirectory()) walk(f); else if (/\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name)) ts.push(f); } })("/app/dist");
  if (ts.length) p.push("TypeScript sources in dist: " + ts.slice(0, 3));
  if (fs.existsSync("/app/dist/test")) p.push("compiled tests in dist");
  if (process.getuid() === 0) p.push("uid 0");
  if (p.length) { console.error(p.join("\n")); process.exit(1); }
  console.log("  /app = " + top + "; dist/" + fs.readdirSync("/app/dist").join(",") + "; uid=" + process.getuid() + "; no dev deps, no .ts, no tests");
' || fail "image contents check failed"

# --- 4. run and wait for healthy ---------------------------------------------------------------
HOST_PORT=${HOST_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}
BASE_URL=http://127.0.0.1:$HOST_PORT
log "podman run -d --name $CONTAINER ${RUN_FLAGS[*]} -p 127.0.0.1:$HOST_PORT:3000 -e LOG_LEVEL=info -e DMAEMU_MAX_SESSIONS=1 $IMAGE"
T_START=$(date +%s%N)
pm run -d --name "$CONTAINER" "${RUN_FLAGS[@]}" -p "127.0.0.1:$HOST_PORT:3000" -e LOG_LEVEL=info -e DMAEMU_MAX_SESSIONS=1 \
  "$IMAGE" >/dev/null 2>"$WORK/run.log" || { cat "$WORK/run.log" >&2; fail "podman run failed"; }

healthy=
for _ in $(seq 1 100); do
  state=$(pm inspect --format '{{.State.Status}}' "$CONTAINER" 2>/dev/null || echo gone)
  [ "$state" = running ] || fail "container is $state before it became healthy"
  if pm healthcheck run "$CONTAINER" >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.2
done
[ -n "$healthy" ] || fail "HEALTHCHECK did not pass within 20 s"
log "healthy after $(ms_since "$T_START") ms (podman healthcheck run -> $(pm inspect --format '{{.State.Health.Status}}' "$CONTAINER" 2>/dev/null || pm inspect --format '{{.State.Healthcheck.Status}}' "$CONTAINER"))"
pm logs "$CONTAINER" 2>&1 | grep -q 'dmaemu listening on http://' \
  || fail "the log has no 'dmaemu listening on http://...'"
log "log: $(pm logs "$CONTAINER" 2>&1 | grep -m1 'dmaemu listening on')"

# --- 5. the API through the published port -----------------------------------------------------
# http METHOD PATH [BODY] -> sets STATUS and BODY_FILE
http() {
  local args=(-sS -o "$WORK/body" -w '%{http_code}' -X "$1" "$BASE_URL$2")
  [ $# -ge 3 ] && args+=(-H 'content-type: application/json' --data-binary "$3")
  STATUS=$(curl "${args[@]}") || fail "$1 $2: curl could not reach $BASE_URL"
}
# check JS_EXPRESSION MESSAGE: evaluates with `b` = the last response body (parsed JSON)
check() {
  node -e 'const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (!(0, eval)("(b) => (" + process.argv[2] + ")")(b)) process.exit(1)' "$WORK/body" "$1" \
    || fail "$2: $(head -c 600 "$WORK/body")"
}

http GET /healthz
[ "$STATUS" = 200 ] || fail "GET /healthz from the host: HTTP $STATUS"
check 'b.status === "ok"' 'GET /healthz body'
log "GET /healthz -> 200 $(cat "$WORK/body")"

http POST /v1/sessions '{}'
[ "$STATUS" = 201 ] || fail "POST /v1/sessions: HTTP $STATUS (want 201): $(head -c 600 "$WORK/body")"
check 'typeof b.id === "string" && b.id.length >= 16 && b.config && typeof b.config === "object"' \
  'POST /v1/sessions: want {id, config}'
SID=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).id' "$WORK/body")
log "POST /v1/sessions -> 201 id=$SID"

SG='{"dir":"to_device","sg":[{"phys":"0x80001000","length":4096},{"phys":"0x90000000","length":8192}]}'
http POST "/v1/sessions/$SID/map_sg" "$SG"
[ "$STATUS" = 200 ] || fail "POST map_sg: HTTP $STATUS (want 200): $(head -c 600 "$WORK/body")"
check 'Number.isInteger(b.nents) && b.nents >= 1 && Array.isArray(b.segments) && b.segments.length === b.nents
  && b.segments.every((s) => /^0x[0-9a-f]+$/.test(s.dma_address) && Number.isInteger(s.dma_length) && s.dma_length > 0)
  && b.segments.reduce((n, s) => n + s.dma_length, 0) === 12288' \
  'map_sg: want nents >= 1 and nents segments of hex dma_address covering 12288 bytes'
log "POST /v1/sessions/{id}/map_sg -> 200 $(head -c 300 "$WORK/body")"

http POST /v1/sessions '{}'
[ "$STATUS" = 429 ] || fail "second POST /v1/sessions with DMAEMU_MAX_SESSIONS=1: HTTP $STATUS (want 429): $(head -c 600 "$WORK/body")"
check 'b.code === "DMAEMU_TOO_MANY_SESSIONS" && b.statusCode === 429' 'second POST /v1/sessions: want code DMAEMU_TOO_MANY_SESSIONS'
log "second POST /v1/sessions (DMAEMU_MAX_SESSIONS=1) -> 429 $(head -c 200 "$WORK/body")"

http GET /openapi.json
[ "$STATUS" = 200 ] || fail "GET /openapi.json: HTTP $STATUS"
check 'typeof b.openapi === "string" && b.paths && b.paths["/v1/sessions/{id}/map_sg"]' '/openapi.json: want an OpenAPI document with map_sg'
http GET /metrics
[ "$STATUS" = 200 ] || fail "GET /metrics: HTTP $STATUS"
docs=$(curl -sS -L -o /dev/null -w '%{http_code}' "$BASE_URL/docs") || fail "GET /docs: curl failed"
[ "$docs" = 200 ] || fail "GET /docs (Swagger UI): HTTP $docs"
log "GET /openapi.json, /metrics, /docs -> 200"

# --- 5b. restart: the session comes back from its op log in the /data volume ------------------
pm restart -t 10 "$CONTAINER" >/dev/null 2>"$WORK/restart.log" || { cat "$WORK/restart.log" >&2; fail "podman restart failed"; }
T_RESTART=$(date +%s%N)
back=0
for _ in $(seq 1 150); do
  if curl -sf -o /dev/null "$BASE_URL/healthz" 2>/dev/null; then back=1; break; fi
  sleep 0.2
done
[ "$back" = 1 ] || fail "not answering /healthz 30 s after podman restart"
http GET "/v1/sessions/$SID"
[ "$STATUS" = 200 ] || fail "GET /v1/sessions/{id} after a restart: HTTP $STATUS (want 200: restored from /data): $(head -c 600 "$WORK/body")"
check "b.id === '$SID' && b.live_mappings === 1 && b.counters.map_sg === 1" 'after a restart: want the session with its one mapping'
pm logs "$CONTAINER" 2>&1 | grep '"msg":"op store opened"' | tail -1 | grep -q '"restored":1' \
  || fail "after a restart the log does not say one session was restored"
log "podman restart -> answering after $(ms_since "$T_RESTART") ms; GET /v1/sessions/{id} -> 200, its mapping restored from the /data volume"

http DELETE "/v1/sessions/$SID"
[ "$STATUS" = 200 ] || fail "DELETE /v1/sessions/{id}: HTTP $STATUS (want 200): $(head -c 600 "$WORK/body")"
log "DELETE /v1/sessions/{id} -> 200 $(head -c 300 "$WORK/body")"

# --- 6. SIGTERM -> exit 0 within 10 s ----------------------------------------------------------
log "podman kill --signal TERM $CONTAINER"
t=$(date +%s%N)
pm kill --signal TERM "$CONTAINER" >/dev/null || fail "podman kill --signal TERM failed"
if ! code=$(timeout 10 podman "${PODMAN_GLOBAL[@]}" wait --interval 50ms "$CONTAINER"); then
  fail "container still running 10 s after SIGTERM"
fi
wait_ms=$(ms_since "$t")
code=$(printf '%s' "$code" | tail -1)
[ "$code" = 0 ] || fail "container exited with code $code after SIGTERM (want 0)"
[ "$(pm inspect --format '{{.State.ExitCode}}' "$CONTAINER")" = 0 ] || fail "inspect: exit code is not 0"
finished=$(pm inspect --format '{{.State.FinishedAt.UnixNano}}' "$CONTAINER" 2>/dev/null || echo 0)
exit_ms=$(( (finished - t) / 1000000 ))
pm logs "$CONTAINER" 2>&1 | grep -q '"signal":"SIGTERM"' \
  || fail "exit 0, but the log does not show the server's own SIGTERM handler ('shutting down')"
log "SIGTERM -> exit code 0: process gone ${exit_ms} ms after the kill (State.FinishedAt), podman wait returned after ${wait_ms} ms"
log "server logged: $(pm logs "$CONTAINER" 2>&1 | grep -m1 '"signal":"SIGTERM"' | grep -oE '"signal":"SIGTERM","msg":"[^"]*"')"

echo "PASS: container smoke test (image $IMAGE from $BASE_IMAGE; SIGTERM -> exit 0 in $exit_ms ms)"
