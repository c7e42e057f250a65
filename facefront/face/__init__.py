"""Face analysis: detection, 468 dense 3-D landmarks, alignment crops, head pose and mesh3d.

``analyze(image) -> list[Face]`` is the entry point; see ``docs/face.md``.
"""
from facefront.face.analysis import Face, FaceAnalyzer, NoFaceError, analyze

__all__ = ["Face", "FaceAnalyzer", "NoFaceError", "analyze"]
