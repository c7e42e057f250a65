"""mesh3d served by the real CPU tritonserver, through the client: frontal face, pose request, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from client import FrontalizeClient

pytestmark = pytest.mark.server


def test_mesh3d_through_triton(triton_server):
    from client.api import ServerError
    from facefront.data import photo
    from facefront.face import analyze
    from facefront.face.pose import head_pose

    with FrontalizeClient(triton_server.grpc_url) as c:
        assert "mesh3d" in c.models() and c.model_info("mesh3d").pose
        out = c.frontalize(photo("obama2.jpg"), model="mesh3d")
        assert out.shape == (256, 256, 3) and out.dtype == np.uint8
        assert abs(head_pose(analyze(out, max_faces=1)[0].landmarks)[0]) < 5
        turned = c.frontalize(photo("obama.jpg"), model="mesh3d", yaw=25)
        assert head_pose(analyze(turned, max_faces=1)[0].landmarks)[0] > 5
        with pytest.raises(ServerError, match="no face was found"):
            c.frontalize(np.full((120, 160, 3), 90, np.uint8), model="mesh3d")
        with pytest.raises((ServerError, ValueError), match="within"):
            c.frontalize(photo("obama.jpg"), model="mesh3d", yaw=120)
