# batchserve on a slim CPU image: ONNX Runtime (no torch, no TensorFlow), non-root.
#   docker build -t batchserve .
#   docker run -p 8000:8000 batchserve                                  # the baked-in demo models
#   docker run -p 8000:8000 -v $PWD/models:/models:ro batchserve        # your own, mounted
#   docker run -p 8000:8000 -e BATCHSERVE_REPOSITORY=s3://bucket/models batchserve
# Extras (torch, tflite, ...) by build argument: --build-arg EXTRAS=s3,tflite
FROM python:3.11-slim

ARG EXTRAS=s3
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BATCHSERVE_REPOSITORY=/models \
    BATCHSERVE_CACHE_DIR=/var/cache/batchserve

WORKDIR /opt/batchserve
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[${EXTRAS}]" \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin batchserve \
    && mkdir -p /var/cache/batchserve && chown batchserve /var/cache/batchserve

# The demo models; mount a folder over /models (or set BATCHSERVE_REPOSITORY) for yours.
COPY models /models

USER batchserve
EXPOSE 8000
# Readiness, not liveness: a container whose models failed to load is not healthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2)"]
ENTRYPOINT ["batchserve"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
