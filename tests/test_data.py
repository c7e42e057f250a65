"""`make data`: the photo cache and its manifest."""
import json

import pytest

from facefront import data


def test_manifest_lists_every_photo_with_licence_and_faces():
    out = data.gather(count_faces=True)
    man = json.loads((out / data.MANIFEST).read_text())["photos"]
    names = {e["file"] for e in man}
    assert {"obama.jpg", "biden.jpg", "faceapi_sample1.jpg", "astronaut.png", "insightface_t1.jpg"} <= names
    for e in man:
        assert (out / e["file"]).stat().st_size == e["bytes"] > 1000
        assert e["licence"] and e["source"].split(":")[0] in ("pypi-sdist", "pypi-wheel", "npm")
    faces = {e["file"]: e["faces"] for e in man}
    assert faces["obama.jpg"] == 1 and faces["faceapi_sample1.jpg"] == 3 and faces["insightface_t1.jpg"] >= 5
    assert sum(faces.values()) >= 25


def test_unknown_photo_and_env_override(tmp_path, monkeypatch):
    with pytest.raises(data.DataError, match="unknown photo"):
        data.photo("nobody.jpg")
    monkeypatch.setenv("FACEFRONT_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path


def test_decode_rejects_non_images():
    with pytest.raises(ValueError, match="not a decodable image"):
        data.decode_rgb(b"definitely not a jpeg")
