# GPU flavour of facefront: the NGC Triton image of the same core as the CPU wheel (Triton 2.51, TensorRT 10.5).
# Engines are GPU-specific, so they are built on the GPU when the container starts (docker/entrypoint.sh), then
# tritonserver serves model_repository/ with each folder's config.pbtxt (TensorRT plans, KIND_GPU).
#
#   docker build -t facefront-gpu .
#   docker run --gpus all --rm --shm-size=1g -p 127.0.0.1:8000-8002:8000-8002 \
#       -v "$PWD/weights:/opt/facefront/weights:ro" facefront-gpu
# (--shm-size: the python stages exchange tensors with the server through /dev/shm; a LivePortrait request moves a
# few MB per step, Docker's 64 MB default is too small for batches of photos. 127.0.0.1: publish on all interfaces
# only when you mean to.)
FROM nvcr.io/nvidia/tritonserver:24.10-py3

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    FACEFRONT_HOME=/opt/facefront

WORKDIR /opt/facefront

# Python stages (decode, crop, mesh3d) and the exporters. torch is the CPU wheel: export only needs the graph;
# TensorRT's Python bindings match the image's TensorRT 10.5 and come from NVIDIA's package index.
COPY requirements.txt requirements-gpu.txt ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements-gpu.txt \
    && pip install --no-deps mediapipe==0.10.21

COPY . .
RUN pip install --no-deps -e . \
    && chmod +x docker/entrypoint.sh

EXPOSE 8000 8001 8002
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s CMD ["curl", "-fsS", "localhost:8000/v2/health/ready"]
ENTRYPOINT ["docker/entrypoint.sh"]
# The response cache (256 MiB in host memory) serves repeated edits of one photo from LivePortrait's F/M leaves,
# whose configs enable it, as on the CPU flavour.
CMD ["tritonserver", "--model-repository=/opt/facefront/model_repository", "--model-control-mode=none", \
     "--cache-config=local,size=268435456"]
