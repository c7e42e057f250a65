"""Every python-backend model of facefront is this one line: config.pbtxt's `stage` parameter names the class."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the facefront checkout

from facefront.serving.stage import TritonPythonModel  # noqa: E402,F401
