# The example topology's image: one image, run as a backend or as the balancer (see docker-compose.yml).
FROM node:20-slim
WORKDIR /app
COPY package*.json ./
# --ignore-scripts: the prepare script builds lib/, which is not copied yet; tsx runs the TypeScript directly.
RUN npm ci --ignore-scripts
COPY . .
EXPOSE 8080
CMD ["node", "--import", "tsx", "example/balancer.ts"]
