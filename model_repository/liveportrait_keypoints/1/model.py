import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.serving.liveportrait_stages import KeypointsStage  # noqa: E402


class TritonPythonModel(KeypointsStage):
    pass
