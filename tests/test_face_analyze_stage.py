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


class _FakeBls:
    """The slice of triton_python_backend_utils that `bls_infer` uses: each request answered by `answer(model, x)`."""

    TRITONSERVER_MEMORY_CPU = 0

    def __init__(self, answer):
        self.answer, self.requests = answer, []
        fake = self

        class Request:
            def __init__(self, model_name, requested_output_names, inputs, preferred_memory=None):
                fake.requests.append((model_name, [t.as_numpy().shape for t in inputs], preferred_memory))
                self.model, self.outputs, self.inputs = model_name, requested_output_names, inputs

            def exec(self):
                return fake.answer(self.model, self.outputs, self.inputs[0].as_numpy())
        self.InferenceRequest = Request

    class Tensor:
        def __init__(self, name, value, cpu=True):
            self.name, self.value, self.cpu = name, value, cpu

        def as_numpy(self):
            return self.value

        def is_cpu(self):
            return self.cpu

    @staticmethod
    def PreferredMemory(kind, device):
        return ("cpu", kind, device)

    @staticmethod
    def get_output_tensor_by_name(response, name):
        return response.tensors.get(name)


class _Response:
    def __init__(self, tensors=None, error=None):
        self.tensors, self._error = tensors or {}, error

    def has_error(self):
        return self._error is not None

    def error(self):
        return type("E", (), {"message": lambda _: self._error})()


def test_leaves_answer_in_chunks_of_their_max_batch_through_bls(monkeypatch):
    from facefront.serving import stage as stage_mod

    def answer(model, outputs, x):
        return _Response({n: _FakeBls.Tensor(n, np.full((len(x), 2), i, np.float32)) for i, n in enumerate(outputs)})
    fake = _FakeBls(answer)
    monkeypatch.setattr(stage_mod, "pb_utils", fake)
    reg, sc = TritonNetworks(max_batch=8).detector(np.zeros((19, 128, 128, 3), np.float32))
    assert reg.shape == sc.shape == (19, 2) and (reg == 0).all() and (sc == 1).all()
    assert [r[1][0][0] for r in fake.requests] == [8, 8, 3]                 # chunks of the leaf's max batch
    assert all(r[0] == "face_detector" and r[2] == ("cpu", 0, 0) for r in fake.requests)   # asked in CPU memory


def test_a_failing_or_gpu_leaf_is_one_clear_error(monkeypatch):
    from facefront.serving import stage as stage_mod
    from facefront.serving.stage import bls_infer
    monkeypatch.setattr(stage_mod, "pb_utils", _FakeBls(lambda m, o, x: _Response(error="stub is not healthy")))
    with pytest.raises(RuntimeError, match="^face_landmarks: stub is not healthy$"):
        bls_infer("face_landmarks", {"input": np.zeros((1, 2), np.float32)}, ["landmarks"])
    monkeypatch.setattr(stage_mod, "pb_utils", _FakeBls(
        lambda m, o, x: _Response({"landmarks": _FakeBls.Tensor("landmarks", x, cpu=False)})))
    with pytest.raises(RuntimeError, match="returned landmarks in GPU memory"):
        bls_infer("face_landmarks", {"input": np.zeros((1, 2), np.float32)}, ["landmarks", "presence"])
    monkeypatch.setattr(stage_mod, "pb_utils", _FakeBls(lambda m, o, x: _Response({})))
    with pytest.raises(RuntimeError, match="returned landmarks nowhere"):
        bls_infer("face_landmarks", {"input": np.zeros((1, 2), np.float32)}, ["landmarks"])
