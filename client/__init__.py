"""facefront client: frontalize faces with a facefront Triton server (gRPC or HTTP). Light: no torch, no onnx.

    from client import FrontalizeClient
    with FrontalizeClient() as c:
        rgb = c.frontalize("face.jpg", model="scaleway")
        faces = c.analyze("group.jpg", all_faces=True)   # [{box, score, landmarks, pose}, ...], largest first

Command line: ``python -m client --help``.
"""
from .api import FrontalizeClient, ModelInfo, ModelNotServed, ServerError, ServerUnavailable

__all__ = ["FrontalizeClient", "ModelInfo", "ModelNotServed", "ServerError", "ServerUnavailable"]
