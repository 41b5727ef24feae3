# The hub image: one image for hub nodes, workers and migrations (the command differs).
# The web pages' Socket.IO client comes from npm at build time, never from a CDN at run time.
FROM node:20-slim AS web
WORKDIR /web
COPY hub/web/package.json hub/web/package-lock.json ./
RUN npm ci --no-audit --no-fund \
    && mkdir vendor && cp node_modules/socket.io-client/dist/socket.io.esm.min.js vendor/

FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY --from=web /web/vendor ./hub/web/static/vendor
COPY realtime ./realtime
COPY ledger ./ledger
COPY jobs ./jobs
COPY providers ./providers
RUN pip install --no-cache-dir . && useradd --system hub
USER hub
ENV HUB_HOST=0.0.0.0 HUB_PORT=8000
EXPOSE 8000
CMD ["hub", "serve"]
