"""facefront client: frontalize faces with a facefront Triton server (gRPC or HTTP). Light: no torch, no onnx.

    from client import FrontalizeClient
    with FrontalizeClient() as c:
        rgb = c.frontalize("face.jpg", model="scaleway")

Command line: ``python -m client --help``.
"""
from .api import FrontalizeClient, ModelInfo, ServerError, ServerUnavailable

__all__ = ["FrontalizeClient", "ModelInfo", "ServerError", "ServerUnavailable"]
