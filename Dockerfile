# syntax=docker/dockerfile:1
# The Konsul image: `konsul server` and `konsul agent` (docs/kubernetes.md).
#
# Konsul runs its TypeScript sources through tsx, a production dependency (docs/adr/0004), so there
# is no build step: the image holds the production dependencies and the sources, without tests,
# benchmarks and docs (.dockerignore).
FROM node:20-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# classic-level ships prebuilt LevelDB bindings for linux-x64 and linux-arm64 (glibc): no compiler.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
# /konsul/data: a server's Raft log, snapshots and state; /konsul/agent-data: an agent's state;
# /konsul/config: config files (a ConfigMap in Kubernetes). The image runs as the unprivileged
# "node" user (uid 1000) of the base image.
RUN mkdir -p /konsul/data /konsul/agent-data /konsul/config && chown -R node:node /konsul
USER node
# 8300 server-to-server RPC, 8500 HTTP API, 8600 DNS (UDP and TCP).
EXPOSE 8300 8500 8600 8600/udp
VOLUME ["/konsul/data"]
# Node handles SIGTERM itself (Konsul shuts down gracefully), so no init process is needed.
ENTRYPOINT ["node", "/app/bin/konsul.js"]
# `docker run -p 8500:8500 IMAGE`: a single-server dev cluster. Kubernetes passes its own arguments.
CMD ["server", "--dev", "--data-dir", "/konsul/data", "--http-addr", "0.0.0.0:8500", "--dns-addr", "0.0.0.0:8600"]
