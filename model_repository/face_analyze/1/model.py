import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.face.bls_stage import FaceAnalyzeStage  # noqa: E402


class TritonPythonModel(FaceAnalyzeStage):
    pass
