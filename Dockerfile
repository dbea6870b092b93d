# The example topology's image: one image, run as a backend or as the balancer, the goload command with a config file
# mounted at /etc/goload/goload.yaml (see docker-compose.yml).

# Build stage: tsc compiles the plugin and the goload command to dist/, and the example's backend to dist-example/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the prepare script would build before the sources are copied.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.example.json ./
COPY lib lib
COPY example example
RUN npm run build
RUN npm run build:example

# Runtime stage: production dependencies and compiled JavaScript, nothing else; node runs it, no tsx.
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist dist
COPY --from=build /app/dist-example dist-example
USER node
EXPOSE 8080
# Healthy while the process answers HTTP on its PORT, whatever the status: a balancer whose backends are all
# down answers 502 and is itself fine. Slim images have no curl; node's fetch does it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/').then(() => process.exit(0), () => process.exit(1))"]
CMD ["node", "dist/cli/bin.js", "--config", "/etc/goload/goload.yaml"]
