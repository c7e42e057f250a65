"""mesh3d on real photos: the output is frontal (measured again) and keeps the person (dlib identity)."""
import numpy as np
import pytest

from facefront.data import load_rgb
from facefront.face import NoFaceError, analyze
from facefront.face.identity import SAME_PERSON, distance, embedding
from facefront.face.mesh3d import frontalize, render
from facefront.face.pose import head_pose


@pytest.mark.parametrize("name", ["obama2.jpg", "obama3.jpg", "biden.jpg"])
def test_output_is_frontal_and_same_person(name):
    image = load_rgb(name)
    face = analyze(image, max_faces=1)[0]
    yaw_in = head_pose(face.landmarks)[0]
    out = frontalize(image, face=face)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    g = analyze(out, max_faces=1)[0]
    yaw, pitch, roll = head_pose(g.landmarks)
    assert abs(yaw) < 5 and abs(pitch) < 5 and abs(roll) < 4, (yaw, pitch, roll)
    assert abs(yaw) < max(abs(yaw_in) / 2, 3)                    # the turn is mostly undone
    assert distance(embedding(image, face), embedding(out, g)) < 0.35           # same person: < 0.6


def test_identity_is_kept_more_than_it_is_confused():
    obama, biden = load_rgb("obama2.jpg"), load_rgb("biden.jpg")
    out = frontalize(obama)
    e_out = embedding(out)
    assert distance(e_out, embedding(obama)) < SAME_PERSON < distance(e_out, embedding(biden))


def test_large_yaw_fills_from_the_mirror():
    image = load_rgb("insightface_t1.jpg")
    face = analyze(image, max_faces=1)[0]
    assert abs(head_pose(face.landmarks)[0]) > 35
    r = render(image, face.landmarks)
    assert r.mirrored.mean() > 0.1                  # a real share of the face came from the other side
    g = analyze(r.image, max_faces=1)[0]
    assert abs(head_pose(g.landmarks)[0]) < 15


def test_pose_request_size_and_paste_back():
    image = load_rgb("obama.jpg")
    face = analyze(image, max_faces=1)[0]
    small = frontalize(image, yaw=20, size=128, face=face)
    assert small.shape == (128, 128, 3)
    full = frontalize(image, paste_back=True, face=face)
    assert full.shape == image.shape
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert (full[:40, :40] == image[:40, :40]).all()
    inner = np.abs(full[y0:y1, x0:x1].astype(int) - image[y0:y1, x0:x1].astype(int)).mean()
    assert 0 < inner < 40


def test_bad_requests_are_clear():
    image = load_rgb("obama.jpg")
    with pytest.raises(ValueError, match="yaw"):
        frontalize(image, yaw=200)
    with pytest.raises(ValueError, match="size"):
        frontalize(image, size=8)
    with pytest.raises(NoFaceError, match="no face"):
        frontalize(np.full((200, 200, 3), 127, np.uint8))
