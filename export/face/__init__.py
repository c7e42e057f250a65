"""face: MediaPipe's BlazeFace short-range detector and 468-point FaceMesh landmark network, served as leaves.

The served `face_analyze` model (a python BLS model, CPU in both flavours) runs the detector and the landmark
network through these two leaves and returns boxes, 468 3-D landmarks, scores and head pose per face.
"""
from ..common.family import Family
from . import export_spec

FAMILY = Family(
    name="face",
    summary="BlazeFace detector + 468-pt FaceMesh landmarks (mediapipe 0.10.21 tflite -> ONNX), for face_analyze",
    export=export_spec.export,
    networks=list(export_spec.NETWORKS),
    weights_note="mediapipe 0.10.21 tflite files (Apache-2.0), translated to ONNX at export",
    kind="service",   # the leaves of face_analyze, not a frontalization model
)
