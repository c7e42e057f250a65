# CPU flavour of facefront as an image of its own (deploy/k8s/overlays/cpu), for clusters without GPUs: the
# embedded tritonserver from the nvidia-pytriton wheel (Triton 2.51, python backend), onnxruntime/PyTorch leaves,
# configs/cpu.pbtxt of every model. Also the Locust image of the distributed load test (deploy/k8s/loadtest).
#
#   docker build -f deploy/cpu.Dockerfile -t facefront-cpu .
#   docker run --rm -p 8000-8002:8000-8002 -v "$PWD/weights:/opt/facefront/weights:ro" facefront-cpu
FROM python:3.11.7-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FACEFRONT_HOME=/opt/facefront \
    FACEFRONT_DATA=/opt/facefront/data \
    OMP_NUM_THREADS=1

WORKDIR /opt/facefront

# The same pinned stack as `make setup` (torch from the CPU wheel index: an unpinned index pulls a CUDA build).
COPY requirements.txt requirements-nodeps.txt pyproject.toml ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt

COPY . .
# The offline test photos (the Locust workers send one; `make data` does the same) and the ONNX graphs (synthetic
# weights unless weights/ is mounted at run time, where the init container re-exports what is missing).
RUN pip install --no-deps --no-build-isolation -e . \
    && python -m facefront.data --out "$FACEFRONT_DATA" \
    && python -m export onnx all

# any non-root uid works: the image's files are world-readable, what is written goes to mounted volumes
USER 10001
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=30s --timeout=8s --start-period=300s CMD ["python3", "deploy/probe.py", "readiness"]
CMD ["python3", "deploy/cpu_serve.py"]
