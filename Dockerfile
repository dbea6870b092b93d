# The goload balancer's image: the goload command on node:22-slim, serving the config file mounted at
# /etc/goload/goload.yaml. No backend is inside it; the example's backend is a stage of its own (example-backend).
#
#   docker build -t goload .
#   docker run -d --name goload -p 8080:8080 -v ./goload.yaml:/etc/goload/goload.yaml:ro goload
#   docker kill --signal HUP goload     # reload the file
#
# The HEALTHCHECK asks the admin listener's GET /healthz at 127.0.0.1:9090 (GOLOAD_HEALTHCHECK_URL), so the config
# needs `admin: { port: 9090 }`; without an admin listener the container shows unhealthy, with that reason in
# `docker inspect`. See the README's "Operating goload", Docker.

ARG NODE_IMAGE=node:22-slim

# Build stage: tsc compiles the plugin and the goload command to dist/, and the example's backend to dist-example/.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the prepare script would build before the sources are copied.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.example.json ./
COPY lib lib
COPY example example
RUN npm run build
RUN npm run build:example

# The example's backend (node:http, no dependency), for docker-compose.yml: docker build --target example-backend.
# .mjs: the file is an ES module without the package.json that says so.
FROM ${NODE_IMAGE} AS example-backend
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/dist-example/example/backend.js backend.mjs
USER node
EXPOSE 3000
CMD ["node", "backend.mjs"]

# The balancer, the default target (last): production dependencies and compiled JavaScript; node runs it, no tsx.
FROM ${NODE_IMAGE} AS goload
ARG NODE_IMAGE
# package.json's version (a test keeps them equal); REVISION: docker build --build-arg REVISION=$(git rev-parse HEAD).
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="goload" \
      org.opencontainers.image.description="Least-busy HTTP load balancer (fastify-goload's goload command), configured by /etc/goload/goload.yaml" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production \
    GOLOAD_HEALTHCHECK_URL=http://127.0.0.1:9090/healthz
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist dist
COPY deploy/docker/healthcheck.mjs healthcheck.mjs
USER node
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "healthcheck.mjs"]
# goload handles SIGTERM (graceful shutdown), SIGINT and SIGHUP (reload) itself, PID 1 or not.
CMD ["node", "dist/cli/bin.js", "--config", "/etc/goload/goload.yaml"]
