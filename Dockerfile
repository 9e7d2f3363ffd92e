# syntax=docker/dockerfile:1
# The Konsul image: `konsul server` and `konsul agent` (docs/kubernetes.md).
#
# The build stage bundles the sources into dist/ (npm run build, docs/adr/0023-build.md); the image
# holds bin/, dist/ and the production dependencies, no sources: bin/konsul.js then runs dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/build.mjs ./scripts/
# classic-level ships prebuilt LevelDB bindings for linux-x64 and linux-arm64 (glibc): no compiler.
# (npm ci's `prepare` finds no sources yet and skips the build.)
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/dist ./dist
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
