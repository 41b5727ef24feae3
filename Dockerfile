# The hub image: one image for hub nodes, workers and migrations (the command differs).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY realtime ./realtime
COPY ledger ./ledger
COPY jobs ./jobs
RUN pip install --no-cache-dir . && useradd --system hub
USER hub
ENV HUB_HOST=0.0.0.0 HUB_PORT=8000
EXPOSE 8000
CMD ["hub", "serve"]
