import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.serving.liveportrait_stages import PreprocessStage  # noqa: E402


class TritonPythonModel(PreprocessStage):
    pass
