# syntax=docker/dockerfile:1
#
# One image for both roles. The command picks the role:
#   gateway (default):  node dist/bin/gateway.js   HTTP + WebSocket on PORT (8080)
#   worker:             node dist/bin/worker.js    /healthz, /readyz, /metrics on METRICS_PORT (9090)
# Configuration is the environment (README.md, Configuration). deploy/README.md shows it in use.
#
#   docker build -t rt .
#   docker run --rm -e NATS_URL=nats://nats:4222 -p 8080:8080 rt
#   docker run --rm -e NATS_URL=nats://nats:4222 -e REDIS_URL=redis://redis:6379 rt node dist/bin/worker.js

ARG NODE_IMAGE=node:20-bookworm-slim

# Dependencies are installed without their install scripts: nothing here needs one (uWebSockets.js
# ships its binaries, esbuild finds its platform package, bufferutil/utf-8-validate load prebuilds),
# and the slim image has no compiler for the ones that would try node-gyp.

# ---- build: every dependency, TypeScript to dist/ (server, Lua scripts, demo page and SDK)
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY shared ./shared
COPY gateway ./gateway
COPY worker ./worker
COPY client ./client
COPY tools/build-client.ts ./tools/
RUN npm run build

# ---- production dependencies only, in a stage of their own so no build tool reaches the image
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- runtime
FROM ${NODE_IMAGE}
# jemalloc instead of glibc's malloc: a gateway's connects leave short-lived native garbage between
# the allocations its sockets keep, and glibc keeps those pages resident; jemalloc, with a
# background thread and a 1 s decay, returns them (bench C: a gateway's resident memory per idle
# connection 4.1-4.7 KiB on glibc, 2.0-2.1 KiB on jemalloc). LD_PRELOAD= (empty) turns it off.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2)" /usr/local/lib/libjemalloc.so.2
ENV NODE_ENV=production \
    PORT=8080 \
    METRICS_PORT=9090 \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0
WORKDIR /app
# Owned by root and not writable by the process: the server writes nothing to disk.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER node
EXPOSE 8080 9090
# A gateway answers /healthz on PORT, a worker on METRICS_PORT: healthy when either answers 200.
# Slim images have no curl; Node's fetch does it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const ps=[process.env.PORT,process.env.METRICS_PORT].filter(Boolean);Promise.any(ps.map((p)=>fetch('http://127.0.0.1:'+p+'/healthz',{signal:AbortSignal.timeout(2000)}).then((r)=>{if(!r.ok)throw new Error(String(r.status));}))).then(()=>process.exit(0),()=>process.exit(1))"]
# SIGTERM starts the drain: a gateway answers 503 on /readyz and closes its sockets with 1001 over
# DRAIN_MS; a worker drains NATS. Give the container at least DRAIN_MS plus a few seconds to stop.
STOPSIGNAL SIGTERM
CMD ["node", "dist/bin/gateway.js"]
