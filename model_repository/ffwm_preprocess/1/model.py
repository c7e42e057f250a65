import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.serving.crop_stage import CropStage  # noqa: E402


class TritonPythonModel(CropStage):
    CONVENTION = "ffwm"
    SIZE = 128
