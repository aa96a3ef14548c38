# Photo Studio: one image for the web server, the worker and the migration job (docker-compose.yml picks the command).
FROM python:3.11-slim AS base

# The extra index holds torch's CPU wheels: the default ones carry CUDA libraries (gigabytes) this image never uses.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt


# The weights are fetched and converted once, at build time; onnx is needed for that only, so it stays here.
FROM base AS weights
COPY requirements-dev.txt .
RUN pip install "$(grep '^onnx==' requirements-dev.txt)"
COPY ml ml
RUN python -m ml.weights install --model-dir /opt/studio/models


# The worker on AWS Lambda (docker build --target lambda): the same code and models, run by AWS's runtime interface
# client on an SQS event source mapping (jobs/lambda_handler.py, deploy/lambda/template.yaml). Lambda's file system
# is read-only but for /tmp: every scratch path points there. Built before the default image, which stays the last
# stage (a plain `docker build` gives the web and worker image).
FROM base AS lambda
COPY --from=weights /opt/studio/models /opt/studio/models
COPY . .
ENV STUDIO_MODEL_DIR=/opt/studio/models \
    STUDIO_INSTANCE_DIR=/tmp/studio \
    TMPDIR=/tmp \
    HOME=/tmp \
    STUDIO_QUEUE_BACKEND=sqs
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["jobs.lambda_handler.handler"]


FROM base
RUN useradd --create-home --uid 10001 studio \
    && install -d -o studio -g studio /var/lib/studio
COPY --from=weights /opt/studio/models /opt/studio/models
# The code stays owned by root: the app user can read it, not change it.
COPY . .
# GLIBC_TUNABLES: malloc maps huge pages, about 10% less CPU a photo (processes/memory.py).
# NUMBA_CACHE_DIR: pymatting's numba functions (alpha matting) compiled once here, at build time (about a minute),
# and loaded from this cache in under a second by every worker start; the app user may add to it.
ENV STUDIO_MODEL_DIR=/opt/studio/models \
    STUDIO_INSTANCE_DIR=/var/lib/studio \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
    NUMBA_CACHE_DIR=/opt/studio/numba-cache
RUN python -c "import pymatting" && chown -R studio:studio /opt/studio/numba-cache
USER studio
EXPOSE 8000
# Beyond loopback gunicorn serves only behind a proxy that reads each request whole (STUDIO_PROXY_COUNT=1, nginx as
# Compose and Kubernetes run it): see deploy/gunicorn.conf.py.
CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "wsgi:app"]
