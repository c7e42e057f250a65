import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.serving.torch_stage import LeafStage  # noqa: E402  (an OnnxStage, or PyTorch when backend: torch)


class TritonPythonModel(LeafStage):
    pass
