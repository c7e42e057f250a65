"""bench.datasets: the manifest format (JSON lines and CSV), its errors, pose buckets."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench import datasets as ds


@pytest.fixture
def images(tmp_path):
    for n in ("a.png", "b.png", "front.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / n)
    return tmp_path


def test_jsonl_manifest_round_trip(images):
    m = images / "m.jsonl"
    m.write_text('{"image": "a.png", "identity": "p1", "yaw": 30, "frontal": "front.png"}\n'
                 '# a comment\n\n{"image": "b.png", "synthetic": true}\n')
    s = ds.read_manifest(m)
    assert [x.name for x in s] == ["a", "b"]
    assert s[0].yaw == 30.0 and s[0].pitch is None and s[0].identity == "p1"
    assert s[0].frontal == str((images / "front.png").resolve())
    assert s[1].synthetic and s[1].frontal is None
    out = ds.write_manifest(s, images / "again.jsonl")
    first = json.loads(out.read_text().splitlines()[0])
    assert first["image"] == "a.png" and first["frontal"] == "front.png"
    assert ds.read_manifest(out) == s


def test_csv_manifest(images):
    m = images / "m.csv"
    m.write_text("image,identity,yaw,frontal\na.png,p1,-45,front.png\nb.png,p2,,\n")
    s = ds.read_manifest(m)
    assert s[0].yaw == -45.0 and s[1].yaw is None and s[1].frontal is None


@pytest.mark.parametrize("text, message", [
    ('{"image": "missing.png"}\n', "no such file"),
    ('{"identity": "x"}\n', "'image' is required"),
    ('{"image": "a.png", "yaw": "left"}\n', "yaw must be a number"),
    ('{"image": "a.png", "angle": 3}\n', "unknown field"),
    ('not json\n', "not JSON"),
    ('\n', "no samples"),
])
def test_manifest_errors_name_the_line(images, text, message):
    m = images / "bad.jsonl"
    m.write_text(text)
    with pytest.raises(ds.ManifestError, match=message):
        ds.read_manifest(m)


def test_csv_needs_image_column(images):
    m = images / "bad.csv"
    m.write_text("file,yaw\na.png,3\n")
    with pytest.raises(ds.ManifestError, match="'image' column"):
        ds.read_manifest(m)


def test_buckets():
    assert [ds.bucket(y) for y in (0, -5, 15, -30, 44, 60, -75)] == ["0", "0", "15", "30", "45", "60+", "60+"]
    assert ds.bucket(None) == "?"


def test_unknown_builtin_photo():
    with pytest.raises(ValueError, match="not a built-in single-face photo"):
        ds.photo_samples(["group.jpg"])
