"""Face detector + 468 landmarks (ONNX, translated from mediapipe's TFLite) against mediapipe itself."""
import numpy as np
import pytest

from facefront.data import load_rgb
from facefront.face import NoFaceError, analyze
from facefront.face.models import _tflite_bytes
from facefront.face.tflite_onnx import UnsupportedModel, convert

# mean landmark error must stay under 1 % of the inter-ocular distance, max under 3 % (measured: <0.15 %)
MEAN_TOL, MAX_TOL = 0.01, 0.03


def _mediapipe_landmarks(image):
    from mediapipe.python.solutions import face_mesh
    h, w = image.shape[:2]
    with face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as fm:
        res = fm.process(image)
    assert res.multi_face_landmarks, "mediapipe found no face"
    return np.array([[p.x * w, p.y * h, p.z * w] for p in res.multi_face_landmarks[0].landmark])


@pytest.mark.parametrize("name", ["obama2.jpg", "biden.jpg"])
def test_landmarks_match_mediapipe(name):
    image = load_rgb(name)
    ref = _mediapipe_landmarks(image)
    face = analyze(image, max_faces=1)[0]
    assert face.landmarks.shape == (468, 3) and face.landmarks.dtype == np.float32
    iod = np.linalg.norm(ref[33, :2] - ref[263, :2])
    err = np.linalg.norm(face.landmarks[:, :2] - ref[:, :2], axis=1) / iod
    assert err.mean() < MEAN_TOL and err.max() < MAX_TOL, (err.mean(), err.max())
    # z: same scale as x (image pixels), same sign convention as mediapipe
    assert np.abs(face.landmarks[:, 2] - ref[:, 2]).mean() / iod < MEAN_TOL
    x0, y0, x1, y1 = face.box
    inside = (ref[:, 0] > x0 - 0.2 * (x1 - x0)) & (ref[:, 0] < x1 + 0.2 * (x1 - x0))
    assert inside.mean() > 0.95 and 0.5 < face.score <= 1.0


def test_several_faces_largest_first():
    image = load_rgb("faceapi_sample1.jpg")
    faces = analyze(image)
    assert len(faces) == 3
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    one = analyze(image, max_faces=1)
    assert len(one) == 1 and np.allclose(one[0].box, faces[0].box, atol=1.0)
    # distinct faces: boxes do not overlap
    c = np.array([[(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2] for f in faces])
    assert min(np.linalg.norm(c[i] - c[j]) for i in range(3) for j in range(i + 1, 3)) > 100


def test_no_face_is_a_clear_error():
    rng = np.random.default_rng(0)
    for image in (np.zeros((240, 320, 3), np.uint8), rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)):
        with pytest.raises(NoFaceError, match="no face was found"):
            analyze(image)


@pytest.mark.parametrize("bad", [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32),
                                 np.zeros((4, 4, 3), np.uint8), "photo.jpg"])
def test_bad_input_is_a_value_error(bad):
    with pytest.raises(ValueError, match="image"):
        analyze(bad)


def test_translator_names_what_it_cannot_do():
    # the full-range detector stores sparse (DENSIFY) weights, which the translator does not handle
    from facefront.face.models import FaceModel
    sparse = FaceModel("x", "modules/face_detection/face_detection_full_range_sparse.tflite", {}, 192)
    with pytest.raises(UnsupportedModel, match="DENSIFY|sparse"):
        convert(_tflite_bytes(sparse))


def test_search_levels_stop_at_the_smallest_face_asked_for(monkeypatch):
    from facefront.face.analysis import MIN_FACE_ENV, FaceAnalyzer
    levels = lambda mf: [len(level) for level in FaceAnalyzer.windows(1280, 1920, mf)]
    assert levels(0.07) == [1, 6]                     # default: whole photo + half-side tiles
    assert levels(0.035) == [1, 6, 28]                # + quarter-side tiles (crowds)
    assert levels(0.5) == [1]
    assert [len(v) for v in FaceAnalyzer.windows(300, 400, 0.01)] == [1]   # small photo: the whole image only
    monkeypatch.setenv(MIN_FACE_ENV, "0.035")
    assert FaceAnalyzer(networks=object()).min_face == 0.035
    with pytest.raises(ValueError, match="fraction of the photo's long side"):
        FaceAnalyzer(networks=object(), min_face=0)


def test_a_small_face_is_found_only_when_asked_for():
    """obama at 35 % in a 1920-px canvas: an 87-px face, 4.5 % of the long side, below the default's 7 %."""
    import cv2

    from facefront.face.analysis import FaceAnalyzer
    img = load_rgb("obama.jpg")
    small = cv2.resize(img, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    canvas = np.full((1920, 1920, 3), 120, np.uint8)
    canvas[800:800 + small.shape[0], 700:700 + small.shape[1]] = small
    with pytest.raises(NoFaceError):
        FaceAnalyzer().analyze(canvas)
    faces = FaceAnalyzer(min_face=0.035).analyze(canvas)
    assert len(faces) == 1 and 700 < faces[0].box[0] < 700 + small.shape[1]
