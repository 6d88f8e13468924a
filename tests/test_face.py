"""Face detection on real photos, and the geometry of alignment and the crop function."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from .conftest import PHOTOS, photos_path, utk_files

from agecli.data.images import load_rgb
from agecli.face.align import (FACE_TEMPLATE, align_face, crop_box, crop_face, crop_matrix, eye_angle,
                               rotation_matrix, template_params, transform_points)
from agecli.face.detector import Face, main_face, nms


def photos():
    return sorted(p for p in photos_path().iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@pytest.fixture(scope="module")
def detector():
    from agecli.face.detector import FaceDetector

    return FaceDetector(threads=1)


def angle(p: np.ndarray, q: np.ndarray) -> float:
    return math.degrees(math.atan2(q[1] - p[1], q[0] - p[0]))


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- detector on real photos ---------------------------------------------------

def test_detector_finds_faces_in_every_photo(detector):
    files = photos()
    for p in files:
        img = load_rgb(p)
        h, w = img.shape[:2]
        faces = detector.detect(img)
        assert faces, f"no face found in {p.name}"
        scores = [f.score for f in faces]
        assert scores == sorted(scores, reverse=True)
        for f in faces:
            assert f.box.shape == (4,) and f.landmarks.shape == (5, 2)
            assert -0.2 * w < f.box[0] < f.box[2] < 1.2 * w and -0.2 * h < f.box[1] < f.box[3] < 1.2 * h
            a = align_face(f, h, w)
            m = crop_matrix(h, w, a.deg, a.box, 0.4, 112)
            le, re = transform_points(m, f.landmarks[:2])
            assert abs(angle(le, re)) < 2.0, f"eyes not level in {p.name}"
            assert le[0] < re[0]  # upright: the image-left eye stays on the left
            assert 0 < le[0] < 112 and 0 < le[1] < 112 and 0 < re[0] < 112 and 0 < re[1] < 112


def test_crowd_is_searched_again_enlarged(detector):
    """group_25: the back rows (faces ~10-20 px) are found by the enlarged second pass,
    and every face of the first pass is kept."""
    if not (PHOTOS / "group_25.jpg").is_file():
        pytest.skip(f"no photos at {PHOTOS}")
    from agecli.face.detector import FaceDetector, merge

    img = load_rgb(PHOTOS / "group_25.jpg")
    one = FaceDetector(threads=1, upscale=1.0).detect(img)
    two = detector.detect(img)
    assert len(two) > 1.5 * len(one)
    boxes = np.stack([f.box for f in two])
    for f in one:
        assert any(iou(f.box, b) > 0.5 for b in boxes)
    assert [f.score for f in two] == sorted((f.score for f in two), reverse=True)
    assert len(merge(two + two, 0.4)) == len(two)  # one box per face


def test_photos_of_large_faces_get_one_pass(detector):
    """No face under RESCAN_BELOW px: the result is the one-pass result (no extra cost)."""
    from agecli.face.detector import RESCAN_BELOW, FaceDetector

    img = load_rgb(utk_files(1)[0])
    big = cv2.resize(img, (800, 800))
    faces = detector.detect(big)
    assert faces and min(f.width for f in faces) >= RESCAN_BELOW
    one = FaceDetector(threads=1, upscale=1.0).detect(big)
    assert [f.box.tolist() for f in faces] == [f.box.tolist() for f in one]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def test_small_face_flag_follows_the_box():
    from agecli.face.detector import SMALL_FACE_PX, is_small_face

    assert is_small_face([10, 10, 10 + SMALL_FACE_PX - 1, 40])
    assert is_small_face([10, 10, 40, 10 + SMALL_FACE_PX - 1])
    assert not is_small_face([10, 10, 10 + SMALL_FACE_PX, 10 + SMALL_FACE_PX])


def test_detector_on_blank_and_tiny_images(detector):
    assert detector.detect(np.full((300, 300, 3), 128, np.uint8)) == []
    assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]


def test_main_face_prefers_large_central_face():
    def face(x1, y1, x2, y2, score=0.99):
        return Face(np.array([x1, y1, x2, y2], float), score, np.zeros((5, 2)))

    small_corner = face(0, 0, 20, 20)
    big_centre = face(70, 70, 130, 130, score=0.9)
    assert main_face([small_corner, big_centre], 200, 200) is big_centre
    assert main_face([], 200, 200) is None


# --- alignment ---------------------------------------------------------------

@pytest.mark.parametrize("deg", [-35.0, -7.5, 0.0, 12.0, 40.0])
def test_align_face_levels_the_eyes_and_keeps_the_box_size(deg):
    h, w = 300, 400
    centre = np.array([180.0, 140.0])
    d = 20 * np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])
    lm = np.array([centre - d, centre + d, centre, centre + [-10, 30], centre + [10, 30]])
    f = Face(np.array([140.0, 95.0, 220.0, 195.0]), 0.99, lm)
    assert eye_angle(lm) == pytest.approx(deg)
    a = align_face(f, h, w)
    assert a.deg == pytest.approx(deg)
    assert a.box[2] - a.box[0] == pytest.approx(80) and a.box[3] - a.box[1] == pytest.approx(100)
    m, _ = rotation_matrix(h, w, a.deg)
    le, re = transform_points(m, lm[:2])
    assert le[1] == pytest.approx(re[1], abs=1e-9) and le[0] < re[0]
    box_centre = transform_points(m, [[180.0, 145.0]])[0]
    assert box_centre == pytest.approx([(a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2])


@pytest.mark.parametrize("deg,scale,shift", [(0.0, 90.0, (60.0, 40.0)), (-25.0, 140.0, (200.0, 90.0)),
                                             (33.0, 50.0, (10.0, 150.0)), (170.0, 120.0, (260.0, 260.0))])
def test_template_crop_puts_the_landmarks_on_the_template(deg, scale, shift):
    """Landmarks that are a turned, scaled and moved copy of the template land exactly on
    the template in the crop (expand 0), whatever the turn; with expand the template's
    square grows about its centre."""
    h, w, size = 320, 360, 64
    t = np.array(FACE_TEMPLATE)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    lm = (t * scale) @ np.array([[c, s], [-s, c]]) + np.array(shift)
    p = template_params(lm, h, w, FACE_TEMPLATE)
    assert transform_points(crop_matrix(h, w, p.deg, p.box, 0.0, size), lm) == pytest.approx(t * size, abs=1e-6)
    grown = transform_points(crop_matrix(h, w, p.deg, p.box, 0.5, size), lm)
    assert grown == pytest.approx((t - 0.5) / 1.5 * size + size / 2, abs=1e-6)


@pytest.mark.parametrize("deg", [0.0, 15.0, -30.0, 90.0, 180.0])
def test_rotation_canvas_holds_the_whole_image(deg):
    h, w = 120, 200
    m, (cw, ch) = rotation_matrix(h, w, deg)
    corners = transform_points(m, [[0, 0], [w, 0], [0, h], [w, h]])
    assert (corners >= -1e-6).all() and (corners[:, 0] <= cw + 1e-6).all() and (corners[:, 1] <= ch + 1e-6).all()


# --- the crop function -------------------------------------------------------

def test_crop_without_rotation_is_a_resize_of_the_box():
    img = random_image(200, 300)
    box = (100, 50, 140, 90)
    region = img[50:90, 100:140]
    assert np.array_equal(crop_face(img, 0.0, box, 0.0, 40), region)
    for size in (64, 100):  # upscaling: bilinear like cv2.resize (borders see the neighbours)
        c = crop_face(img, 0.0, box, 0.0, size).astype(int)
        r = cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR).astype(int)
        assert np.abs(c - r)[3:-3, 3:-3].max() <= 1
    smooth = cv2.GaussianBlur(img, (0, 0), 2)
    for size in (20, 10):  # downscaling
        c = crop_face(smooth, 0.0, box, 0.0, size).astype(int)
        r = cv2.resize(smooth[50:90, 100:140], (size, size), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(c - r)[1:-1, 1:-1].mean() < 1.5


@pytest.mark.parametrize("size", [50, 64, 100])
def test_large_downscale_is_not_shifted(size):
    # a big image through the pre-resize path: a centred bright square stays centred in the crop
    img = np.zeros((2000, 2000, 3), np.uint8)
    img[900:1100, 900:1100] = 255
    c = crop_face(img, 0.0, (600, 600, 1400, 1400), 0.0, size)[..., 0].astype(float)
    cy, cx = np.average(np.indices(c.shape), axis=(1, 2), weights=c)
    assert cx == pytest.approx((size - 1) / 2, abs=0.05) and cy == pytest.approx((size - 1) / 2, abs=0.05)
    bright = np.nonzero(c[size // 2] > 127)[0]
    assert bright.min() + bright.max() == size - 1  # symmetric


def test_expand_grows_the_box():
    assert crop_box((100, 100, 150, 150), 0.0) == pytest.approx((100, 100, 150, 150))
    assert crop_box((100, 100, 150, 150), 0.2) == pytest.approx((95, 95, 155, 155))
    # a non-square box becomes a square on its longer side, same centre
    assert crop_box((100, 100, 140, 200), 0.5) == pytest.approx((45, 75, 195, 225))


def test_crop_box_is_not_clipped_at_the_image_edges():
    # a face at the corner keeps its square; crop_face pads the part outside the image
    assert crop_box((0, 10, 50, 60), 1.0) == pytest.approx((-25, -15, 75, 85))


def _sample_face() -> np.ndarray:
    """A real photo (matplotlib's public-domain sample of Grace Hopper), RGB."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_a_face_at_the_edge_gets_the_same_square_as_in_the_middle(detector):
    """Cut the photo so the face touches the frame edge: the crop shows the same pixels
    where both have image, black where the cut one has none, and no stretching."""
    photo = _sample_face()
    h, w = photo.shape[:2]  # tilt the head, so the crop's rotation is exercised too
    photo = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0), (w, h))
    faces = detector.detect(photo)
    assert faces, "the detector finds the sample face"
    f = max(faces, key=lambda f: f.width * f.height)
    size, expand = 192, 0.4  # no pre-downscale at this size: one warp, comparable pixel for pixel
    # the face in the middle of its photo
    p = align_face(f, *photo.shape[:2])
    full = crop_face(photo, p.deg, p.box, expand, size)
    # the same photo cut just left of the face's centre: the face sits at the left edge
    cut_x = int(round((f.box[0] + f.box[2]) / 2)) - 10
    cut = photo[:, cut_x:]
    box = (f.box[0] - cut_x, f.box[1], f.box[2] - cut_x, f.box[3])
    q = align_face(Face(box=np.array(box), score=f.score, landmarks=f.landmarks - [cut_x, 0]), *cut.shape[:2])
    edge = crop_face(cut, q.deg, q.box, expand, size)
    # where the cut photo still has image, the two crops agree (bilinear weights identical)
    present = crop_face(np.full(cut.shape[:2], 255, np.uint8), q.deg, q.box, expand, size) == 255
    assert 0.2 < present.mean() < 0.8
    diff = np.abs(full.astype(int) - edge.astype(int))[present]
    assert diff.max() <= 1
    # where it has none, black padding, not stretched face
    outside = crop_face(np.full(cut.shape[:2], 255, np.uint8), q.deg, q.box, expand, size) == 0
    assert outside.mean() > 0.2 and edge[outside].max() == 0
    assert abs(p.deg) > 5


@pytest.mark.parametrize("size", [32, 64, 113])
@pytest.mark.parametrize("shape", [(200, 300, 3), (200, 300), (60, 40, 3)])
def test_crop_output_is_size_by_size(size, shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    for deg, box, expand in [(0, (10, 10, 30, 30), 0.0), (25, (5, 5, 50, 70), 0.4), (-60, (-20, -20, 500, 500), 0.2)]:
        out = crop_face(img, deg, box, expand, size)
        assert out.shape == (size, size) + shape[2:] and out.dtype == img.dtype


@pytest.mark.parametrize("deg", [-40.0, -10.0, 20.0, 33.0])
def test_rotation_by_deg_levels_a_point_pair_at_that_angle(deg):
    h, w = 240, 320
    p = np.array([130.0, 110.0])
    q = p + 60 * np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])
    m0, _ = rotation_matrix(h, w, deg)
    c = transform_points(m0, [(p + q) / 2])[0]
    box = (c[0] - 50, c[1] - 50, c[0] + 50, c[1] + 50)
    m = crop_matrix(h, w, deg, box, 0.0, 100)
    a, b = transform_points(m, [p, q])
    assert a[1] == pytest.approx(b[1], abs=1e-9) and b[0] - a[0] == pytest.approx(60)
    # the pixels agree with the points: two dots drawn at p and q land on one row of the crop
    img = np.zeros((h, w, 3), np.uint8)
    for pt in (p, q):  # sub-pixel dots; cv2 draws in pixel-centre coordinates (edge - 0.5)
        x, y = np.round((pt - 0.5) * 16).astype(int)
        cv2.circle(img, (int(x), int(y)), 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    crop = crop_face(img, deg, box, 0.0, 100)[..., 0].astype(float)
    left, right = crop[:, :50], crop[:, 50:]
    rows = [np.average(np.arange(100), weights=half.sum(1)) for half in (left, right)]
    assert abs(rows[0] - rows[1]) < 0.5
    assert rows[0] == pytest.approx(a[1] - 0.5, abs=0.6)  # pixel-centre row of the mapped point
