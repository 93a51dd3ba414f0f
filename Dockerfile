# syntax=docker/dockerfile:1
# files-api image: `docker build -t files-api .`, or `docker compose up` (docker-compose.yml).
# Serves `node dist/main.js`; `npm run db:migrate` in the same image applies prisma/migrations.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: all dependencies, Prisma client generated, TypeScript compiled to dist/ ---------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true \
    PRISMA_HIDE_UPDATE_MESSAGE=1 \
    CHECKPOINT_DISABLE=1
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY nest-cli.json tsconfig.json tsconfig.build.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY src ./src
# prebuild runs scripts/prisma-generate.js (prisma generate, no engine download), then nest build.
RUN npm run build

# --- deps: production dependencies only ---------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV CI=true \
    PRISMA_HIDE_UPDATE_MESSAGE=1 \
    CHECKPOINT_DISABLE=1
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
# Code stays root-owned (read-only to the service); only the fs storage directory is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json package-lock.json ./
# The migration runner reads prisma/migrations relative to dist/ (dist/database/../../prisma).
COPY prisma/migrations ./prisma/migrations
RUN mkdir -p /app/data/files && chown -R node:node /app/data
USER node
EXPOSE 3000
# Liveness only; readiness (PostgreSQL + storage) is /readyz, which compose checks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/main.js"]
