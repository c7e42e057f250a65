"""The face front end's python stages outside the server: face_analyze's `face_networks` option and the crop stage's
reduced-scale decode (the served side of both is tests/test_face_serving.py and tests/test_serving.py)."""
import numpy as np
import pytest

from facefront import imaging, repository
from facefront.data import photo
from facefront.face import align, analyze
from facefront.face.bls_stage import FaceAnalyzeStage, TritonNetworks, faces_to_outputs
from facefront.serving.crop_stage import face_crop, face_has_pixels, largest_face
from facefront.serving.stage import from_repository


def test_face_networks_option():
    assert repository.stage_parameters("face_analyze", flavour="cpu")["face_networks"] == "in_process"
    assert repository.stage_parameters("face_analyze", flavour="gpu")["face_networks"] == "leaves"
    leaves = FaceAnalyzeStage.standalone({"face_networks": "leaves"}, "face_analyze")
    assert isinstance(leaves.analyzer.networks, TritonNetworks)
    assert isinstance(FaceAnalyzeStage.standalone({}, "face_analyze").analyzer.networks, TritonNetworks)  # default
    with pytest.raises(RuntimeError, match="face_networks must be one of leaves, in_process"):
        FaceAnalyzeStage.standalone({"face_networks": "gpu"}, "face_analyze")
    with pytest.raises(RuntimeError, match="face runtime must be one of"):
        FaceAnalyzeStage.standalone({"face_networks": "in_process", "face_runtime": "tensorflow"}, "face_analyze")


@pytest.mark.parametrize("name,all_faces", [("obama.jpg", False), ("faceapi_sample1.jpg", True)])
def test_in_process_stage_answers_as_in_process_analysis(name, all_faces):
    stage = from_repository("face_analyze")          # the CPU config: face_networks in_process
    data = photo(name).read_bytes()
    got = stage.analyze_one(data, all_faces)
    ref = faces_to_outputs(analyze(imaging.decode(data), max_faces=None if all_faces else 1))
    for k in ("BOXES", "SCORES", "LANDMARKS", "POSE"):
        np.testing.assert_allclose(got[k], ref[k], atol=1e-4, rtol=0)


def test_crop_keeps_the_reduced_decode_for_a_large_face():
    stage = from_repository("scaleway_preprocess")
    data = photo("obama.jpg").read_bytes()             # 910x1137, face box ~280 px: decoded at 1/2
    half = imaging.decode(data, min_side=stage.SIZE * stage.FIRST_SIDE)
    assert max(half.shape[:2]) < 1137
    assert face_has_pixels(largest_face(half), stage.mode, stage.SIZE)
    assert np.array_equal(stage.crop_one(data), face_crop(half, stage.mode, stage.SIZE))


def test_crop_decodes_again_for_a_small_face():
    stage = from_repository("scaleway_preprocess")
    data = photo("biden.jpg").read_bytes()             # 970x2204: a face too small at the first, 1/4 scale
    first = imaging.decode(data, min_side=stage.SIZE * stage.FIRST_SIDE)
    assert not face_has_pixels(largest_face(first), stage.mode, stage.SIZE)
    again = imaging.decode(data, min_side=stage.SIZE * stage.FULL_SIDE)
    assert max(again.shape[:2]) > max(first.shape[:2])
    assert np.array_equal(stage.crop_one(data), face_crop(again, stage.mode, stage.SIZE))


def test_face_has_pixels_is_the_crop_and_landmark_resolution():
    rgb = imaging.decode(photo("obama.jpg").read_bytes())
    face = largest_face(rgb)
    m = align.transform(face, "landmark_box", 128)
    assert abs(np.linalg.det(m[:, :2])) < 1 and face_has_pixels(face, "landmark_box", 128)
    assert not face_has_pixels(face, "landmark_box", 1024)   # a crop larger than the face region


def test_crop_searches_a_larger_decode_when_the_reduced_one_has_no_face(monkeypatch):
    import io

    from PIL import Image

    from facefront.face.analysis import default_analyzer
    from facefront.serving.stage import InputError
    # faces down to 3.5 % of the long side (FACEFRONT_MIN_FACE=0.035): quarter-side tiles, which need the pixels of
    # the larger decode for this small face
    monkeypatch.setattr(default_analyzer(), "min_face", 0.035)
    stage = from_repository("scaleway_preprocess")
    import cv2
    # a small face pasted into a large flat JPEG: too small to be found at 1/4 scale, found at the 1024-pixel decode
    face = cv2.resize(imaging.decode(photo("obama.jpg").read_bytes())[100:700, 150:850], (210, 180),
                      interpolation=cv2.INTER_AREA)
    canvas = np.full((2200, 2200, 3), 120, np.uint8)
    canvas[900:900 + face.shape[0], 900:900 + face.shape[1]] = face
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    first = imaging.decode(data, min_side=stage.SIZE * stage.FIRST_SIDE)
    with pytest.raises(InputError):
        largest_face(first)
    again = imaging.decode(data, min_side=stage.SIZE * stage.FULL_SIDE)
    assert np.array_equal(stage.crop_one(data), face_crop(again, stage.mode, stage.SIZE))
    # no face at all: the error names the size searched last, as before the reduced first decode
    buf = io.BytesIO()
    Image.fromarray(np.full((2200, 2200, 3), 120, np.uint8)).save(buf, "JPEG")
    with pytest.raises(InputError, match="no face was found in the 1100x1100 image"):
        stage.crop_one(buf.getvalue())
