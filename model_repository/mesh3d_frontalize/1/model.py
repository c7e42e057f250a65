import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.face.mesh3d_stage import Mesh3dStage  # noqa: E402


class TritonPythonModel(Mesh3dStage):
    pass
