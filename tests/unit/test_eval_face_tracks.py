"""Face tracking and SyncNet crops as run_pipeline.py does them, on constructed detections and frames."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.eval.face_tracks import (
    FaceTrack,
    box_iou,
    crop_face,
    crop_track,
    smoothed_boxes,
    track_faces,
)
from avatarv.eval.faces import FaceBox, LabelledFaces, five_points_68


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def _moving_face(n, x0=100.0, size=120.0, step=1.0, every=1, skip=()):
    return [
        [FaceBox(i, (x0 + step * i, 50.0, x0 + step * i + size, 50.0 + size))] if i % every == 0 and i not in skip else []
        for i in range(n)
    ]


def test_one_face_gives_one_interpolated_track():
    dets = _moving_face(80, every=4)  # detections every 4th frame, interpolated between
    tracks = track_faces(dets)
    assert len(tracks) == 1
    t = tracks[0]
    np.testing.assert_array_equal(t.frames, np.arange(0, 77))
    np.testing.assert_allclose(t.boxes[:, 0], 100.0 + np.arange(77))  # linear motion is interpolated exactly


def test_gaps_longer_than_25_frames_split_tracks_and_short_tracks_are_dropped():
    dets = _moving_face(200, skip=set(range(60, 90)))  # a 30-frame gap
    tracks = track_faces(dets)
    assert [(t.start, t.stop) for t in tracks] == [(0, 60), (90, 200)]
    assert [(t.start, t.stop) for t in track_faces(_moving_face(200, skip=set(range(60, 80))))] == [(0, 200)]
    assert track_faces(_moving_face(49)) == []  # 49 frames < 50
    assert len(track_faces(_moving_face(50))) == 1


def test_two_faces_two_tracks_and_small_faces_dropped():
    a = _moving_face(60, x0=0.0)
    b = _moving_face(60, x0=400.0)
    small = _moving_face(60, x0=800.0, size=60.0)
    dets = [fa + fb + fs for fa, fb, fs in zip(a, b, small, strict=True)]
    tracks = track_faces(dets)
    assert len(tracks) == 2
    assert sorted(t.boxes[0, 0] for t in tracks) == [0.0, 400.0]
    assert len(track_faces(dets, min_face_size=50)) == 3


def test_jumps_break_a_track_and_shots_are_respected():
    dets = _moving_face(120, step=0.0)
    for i in range(60, 120):  # the face jumps far away at frame 60: IoU 0 -> new track
        dets[i] = [FaceBox(i, (600.0, 50.0, 720.0, 170.0))]
    assert [(t.start, t.stop) for t in track_faces(dets)] == [(0, 60), (60, 120)]
    same_place = _moving_face(120, step=0.0)
    assert [(t.start, t.stop) for t in track_faces(same_place, shot_starts=[75])] == [(0, 75)]  # 45 frames after the cut: too short
    assert [(t.start, t.stop) for t in track_faces(same_place, shot_starts=[60])] == [(0, 60), (60, 120)]


def test_smoothing_is_a_13_frame_median():
    boxes = np.tile(np.array([[100.0, 100.0, 200.0, 200.0]]), (30, 1))
    boxes[15] = [300.0, 300.0, 420.0, 420.0]  # one outlier detection
    s, x, y = smoothed_boxes(FaceTrack(np.arange(30), boxes))
    np.testing.assert_allclose(s, 50.0)
    np.testing.assert_allclose(x[5:25], 150.0)


def test_crop_geometry_follows_the_original():
    """Box (100,100)-(200,200): s=50, centre (150,150), cs=0.4 -> rows [150-50, 150+50*1.8) = [100, 240) and
    cols [150-70, 150+70) = [80, 220): a 140 px square from the top of the box to well below it."""
    frame = np.zeros((400, 400, 3), dtype=np.uint8)
    rr, cc = np.mgrid[0:400, 0:400]
    frame[..., 0] = (rr % 256).astype(np.uint8)
    frame[..., 1] = (cc % 256).astype(np.uint8)
    crop = crop_face(frame, 50.0, 150.0, 150.0, size=224)
    assert crop.shape == (224, 224, 3)
    # the crop's corners are rows 100 / 239 and columns 80 / 219 of the frame (resized 140 -> 224)
    assert abs(int(crop[0, 0, 0]) - 100) <= 1 and abs(int(crop[-1, 0, 0]) - 239) <= 1
    assert abs(int(crop[0, 0, 1]) - 80) <= 1 and abs(int(crop[0, -1, 1]) - 219) <= 1


def test_crop_pads_with_110_outside_the_frame():
    frame = np.zeros((200, 200, 3), dtype=np.uint8)
    crop = crop_face(frame, 60.0, 20.0, 100.0)  # box centre near the left border: the crop reaches outside
    assert (crop[:, :20] == 110).all()
    track = FaceTrack(np.arange(3), np.tile(np.array([[50.0, 50.0, 150.0, 150.0]]), (3, 1)))
    assert crop_track(np.zeros((3, 200, 200, 3), np.uint8), track).shape == (3, 224, 224, 3)


def test_labelled_faces_hook():
    boxes = [[(10, 10, 50, 50)], None, np.array([1, 2, 3, 4.0])]
    det = LabelledFaces(boxes).detect_video(np.zeros((3, 8, 8, 3)))
    assert [len(d) for d in det] == [1, 0, 1]
    assert det[2][0].box == (1.0, 2.0, 3.0, 4.0) and det[2][0].frame == 2
    with pytest.raises(ValueError):
        LabelledFaces(boxes).detect_video(np.zeros((4, 8, 8, 3)))


def test_five_points_from_68():
    lm = np.zeros((68, 2))
    lm[36:42] = [10, 20]
    lm[42:48] = [30, 20]
    lm[30] = [20, 30]
    lm[48] = [12, 40]
    lm[54] = [28, 40]
    np.testing.assert_array_equal(five_points_68(lm), [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])


def test_tracks_from_known_boxes_split_at_invisible_frames():
    from avatarv.eval.face_tracks import tracks_from_boxes

    boxes = np.tile(np.array([[10.0, 10.0, 60.0, 60.0]]), (130, 1))
    visible = np.ones(130, bool)
    visible[60:65] = False  # face gone for 5 frames
    visible[125:] = False
    tracks = tracks_from_boxes(boxes, visible)
    assert [(t.start, t.stop) for t in tracks] == [(0, 60), (65, 125)]
    assert tracks_from_boxes(boxes, visible, min_track=61) == []


def test_world_labels_hook_crops_contain_the_mouth():
    """A world clip's exact face boxes give one track over the clip, and the SyncNet crop (cs = 0.4 below the
    box) holds every mouth landmark."""
    world = pytest.importorskip("avatarv.world")
    from avatarv.eval.face_tracks import tracks_from_world_labels

    clip = world.make_clip(identity_id=1, scene_id=2, seconds=2.4, size=128, seed=0)
    tracks = tracks_from_world_labels(clip.labels)
    assert len(tracks) == 1 and (tracks[0].start, tracks[0].stop) == (0, len(clip.frames))
    crops = crop_track(clip.frames, tracks[0])
    assert crops.shape == (len(clip.frames), 224, 224, 3)
    s, x, y = smoothed_boxes(tracks[0])
    for i in range(0, len(clip.frames), 7):
        mouth = clip.labels.landmarks[i, 48:68]
        # crop window in frame coordinates: rows [y - s, y + 1.8 s), cols [x - 1.4 s, x + 1.4 s)
        assert (mouth[:, 1] >= y[i] - s[i]).all() and (mouth[:, 1] < y[i] + 1.8 * s[i]).all()
        assert (mouth[:, 0] >= x[i] - 1.4 * s[i]).all() and (mouth[:, 0] < x[i] + 1.4 * s[i]).all()
