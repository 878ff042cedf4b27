"""Faces and the avatar signals (seed: human/face detection with eligible intervals, pose, avatar signals).

dlib HOG detects faces every ``detect_every`` frames (counts are held in between); the largest face is the
subject. A frame with no face is tried again exposure-stretched (when dark) and then unsharp-masked: HOG
misses defocused faces (world frames blurred with sigma 2.2: 12 of 16 found plain, 16 of 16 with the retry;
of a world seed's sampled frames under a sigma-2.5 blur, 10 of 17, none plain). dlib's 68-point predictor
runs on every frame inside the held box, and from the landmarks:

- head pose (yaw, pitch, roll in degrees) by ``cv2.solvePnP`` against a generic 3-D face (6 points);
- mouth openness: inner-lip gap (points 62-66) over the eye-to-mouth distance;
- blink: eye aspect ratio (Soukupova & Cech 2016) below ``blink_ear``;
- face clarity: contrast-free Laplacian variance inside the face box; lighting: face luma and its left/right
  imbalance; teeth visibility: bright, unsaturated pixels inside the inner-lip polygon;
- no person: no face detected; second speaker: two or more faces.

Eligible intervals: runs with exactly one face, at least ``min_face_frac`` of the frame height, for at least
``min_eligible`` frames.

mediapipe 0.10.14 (models shipped in the wheel) adds, on real faces:

- face mesh with irises (``avatarv.media.face_mesh``, every frame): gaze per eye (:func:`iris_gaze`), the
  eye aspect ratio from mesh points and blink events against the clip's own open-eye level
  (:func:`blink_events`); dlib's EAR is the fallback when the mesh finds no face (world faces);
- pose (``avatarv.media.body``, every ``body_every`` frames, held in between): ``person`` runs (nose and
  shoulders visible: a person, not only a face), ``no_human`` (neither a face nor a body), shoulder tilt;
- hands (same stride): hand presence runs and a hand quality per frame (``body.hand_quality``: detection
  confidence x landmarks inside the frame x plausible finger proportions). A hand counts when its
  handedness confidence is ``min_hand_score`` or more and it spans ``min_hand_face`` face heights or more.

Costs measured on the five real clips (458-512 px, AMD EPYC, one thread): face mesh 5-6 ms a frame, pose
35-80 ms, hands 25-40 ms, dlib HOG + 68 points ~25 ms; hence pose and hands on a stride.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import close_gaps, load_video, runs

# generic 3-D face (mm): nose tip, chin, eye outer corners, mouth corners (68-point indices 30, 8, 36, 45, 48, 54)
MODEL_3D = np.array([[0.0, 0.0, 0.0], [0.0, -63.6, -12.5], [-43.3, 32.7, -26.0], [43.3, 32.7, -26.0],
                     [-28.9, -28.9, -24.1], [28.9, -28.9, -24.1]], np.float64)
POSE_POINTS = [30, 8, 36, 45, 48, 54]


def head_pose(lm: np.ndarray, w: int, h: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees from 68 landmarks, pinhole camera with focal length = frame width."""
    import cv2

    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    ok, rvec, _ = cv2.solvePnP(MODEL_3D, lm[POSE_POINTS].astype(np.float64), cam, None,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return (np.nan, np.nan, np.nan)
    rot, _ = cv2.Rodrigues(rvec)
    sy = np.hypot(rot[0, 0], rot[1, 0])
    pitch = np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    yaw = np.degrees(np.arctan2(-rot[2, 0], sy))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    pitch = (pitch + 180) % 360 - 180
    pitch = pitch - 180 if pitch > 90 else (pitch + 180 if pitch < -90 else pitch)
    return float(yaw), float(pitch), float(roll)


def eye_aspect_ratio(lm: np.ndarray) -> float:
    def ear(e):
        return (np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / (2 * np.linalg.norm(e[0] - e[3]) + 1e-6)

    return float((ear(lm[36:42]) + ear(lm[42:48])) / 2)


def mouth_openness(lm: np.ndarray) -> float:
    gap = np.linalg.norm(lm[62] - lm[66])
    scale = np.linalg.norm((lm[36] + lm[45]) / 2 - (lm[48] + lm[54]) / 2) + 1e-6
    return float(gap / scale)


def teeth_fraction(frame: np.ndarray, lm: np.ndarray) -> float:
    import cv2

    poly = lm[60:68].astype(np.int32)
    x0, y0 = np.maximum(poly.min(0), 0)
    x1, y1 = poly.max(0) + 1
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    hsv = cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_RGB2HSV)
    m = mask[y0:y1, x0:x1].astype(bool)
    if m.sum() < 3:
        return 0.0
    teeth = (hsv[..., 2] > 150) & (hsv[..., 1] < 70)
    return float(teeth[m].mean())


# mediapipe face-mesh eye points for the eye aspect ratio (p1..p6 of Soukupova & Cech 2016, in their order:
# outer corner, two upper-lid points, inner corner, two lower-lid points; the usual mediapipe EAR set)
MESH_EAR = {"right": (33, 160, 158, 133, 153, 144), "left": (263, 387, 385, 362, 380, 373)}


def mesh_eye_aspect_ratio(points: np.ndarray) -> np.ndarray:
    """``[T, 478, >=2]`` mesh landmarks -> ``[T]`` mean eye aspect ratio of both eyes,
    ``(|p2-p6| + |p3-p5|) / (2 |p1-p4|)``; NaN where no face."""
    p = np.asarray(points, np.float64)[..., :2]
    out = []
    for idx in MESH_EAR.values():
        e = p[:, list(idx)]  # [T, 6, 2]
        vertical = np.linalg.norm(e[:, 1] - e[:, 5], axis=-1) + np.linalg.norm(e[:, 2] - e[:, 4], axis=-1)
        out.append(vertical / np.maximum(2 * np.linalg.norm(e[:, 0] - e[:, 3], axis=-1), 1e-9))
    return (out[0] + out[1]) / 2


def blink_events(ear: np.ndarray, ratio: float, min_frames: int = 1, max_frames: int = 15) -> list[list[int]]:
    """Blinks as ``[start, end)`` frame runs where the eye aspect ratio drops below ``ratio`` x the clip's
    open-eye level (its 75th percentile: eyes are open most of the time), at least ``min_frames`` and at most
    ``max_frames`` long (a longer closure, 0.6 s at 25 fps, is eyes shut, not a blink: a human blink lasts
    0.1-0.4 s, Caffier et al. 2003). A per-clip level, not a fixed EAR, because the open EAR differs
    between people and with yaw (0.25-0.35 on the real clips)."""
    ear = np.asarray(ear, np.float64)
    if not np.isfinite(ear).any():
        return []
    level = float(np.nanpercentile(ear, 75))
    closed = np.nan_to_num(ear, nan=level) < ratio * level
    return [r for r in runs(closed, min_frames) if r[1] - r[0] <= max_frames]


def iris_gaze(points: np.ndarray) -> np.ndarray:
    """``[T, 478, >=2]`` mesh landmarks (with irises) -> ``[T, 2, 2]`` gaze ``(x, y)`` of the image-left and the
    image-right eye: the iris centre's offset from the middle of the eye's corners, along and across the
    corner-to-corner axis, over half the eye's width. x > 0: towards the image's right; y > 0: down; the iris
    reaches a corner near |x| = 0.6; straight ahead reads x ~ 0, y ~ -0.1 (the iris centre sits a little
    above the corner line). Per eye, because crossed or wall eyes cancel in a mean. The eye's own axis makes it
    independent of head roll and face size; head yaw still shifts it a little (gaze within the eye, not in the
    world)."""
    from avatarv.media.face_mesh import LEFT_EYE_CORNERS, LEFT_IRIS, RIGHT_EYE_CORNERS, RIGHT_IRIS

    p = np.asarray(points, np.float64)[..., :2]
    out = []
    # image-left to image-right corner: subject's right eye outer->inner, subject's left eye inner->outer
    for (a, b), iris in (((RIGHT_EYE_CORNERS[0], RIGHT_EYE_CORNERS[1]), RIGHT_IRIS[0]),
                         ((LEFT_EYE_CORNERS[1], LEFT_EYE_CORNERS[0]), LEFT_IRIS[0])):
        axis = p[:, b] - p[:, a]  # [T, 2]
        half = np.linalg.norm(axis, axis=-1, keepdims=True) / 2  # [T, 1]
        u = axis / np.maximum(2 * half, 1e-9)
        n = np.stack([-u[:, 1], u[:, 0]], -1)  # u turned +90 deg in image coordinates (y down): points down
        off = p[:, iris] - (p[:, a] + p[:, b]) / 2
        out.append(np.stack([(off * u).sum(-1), (off * n).sum(-1)], -1) / np.maximum(half, 1e-9))
    return np.stack(out, 1).astype(np.float32)  # [T, 2, 2]


def unsharp(frame: np.ndarray, amount: float = 1.5, sigma: float = 2.0) -> np.ndarray:
    """Unsharp mask of a uint8 RGB frame: ``(1 + amount) * f - amount * gaussian(f, sigma)``, clipped."""
    import cv2

    soft = cv2.GaussianBlur(frame, (0, 0), sigma).astype(np.float32)
    return np.clip(frame.astype(np.float32) * (1 + amount) - soft * amount, 0, 255).astype(np.uint8)


def pose_range(pose: np.ndarray, lo: float = 5.0, hi: float = 95.0) -> list[float]:
    """``[T, 3]`` (yaw, pitch, roll) degrees -> the 5th-95th percentile spread of each angle. Angles are taken
    about their circular median first (a roll near +-180 does not read as a 360 degree turn) and percentiles
    keep single mis-fitted frames out."""
    out = []
    for k in range(3):
        a = pose[:, k][np.isfinite(pose[:, k])].astype(np.float64)
        if a.size == 0:
            out.append(float("nan"))
            continue
        centre = np.degrees(np.arctan2(np.sin(np.radians(a)).mean(), np.cos(np.radians(a)).mean()))
        d = (a - centre + 180.0) % 360.0 - 180.0
        out.append(float(np.percentile(d, hi) - np.percentile(d, lo)))
    return out


def hold(sampled: np.ndarray, every: int) -> np.ndarray:
    """A per-frame signal measured every ``every`` frames, held until the next sample: ``[T, ...] -> [T, ...]``."""
    return sampled[(np.arange(len(sampled)) // every) * every]


class Faces(Stage):
    name = "faces"
    version = "4"
    inputs = ("normalise",)
    outputs = ("n_faces.npy", "box.npy", "landmarks.npy", "pose.npy", "mesh.npy", "gaze.npy", "body_pose.npy",
               "hand_landmarks.npy")
    resources = Resources(cpu=1.0, memory_mb=1536)

    @dataclass(frozen=True)
    class Config:
        detect_every: int = 3
        min_face_frac: float = 0.12
        min_eligible: int = 25
        blink_ear: float = 0.2  # dlib EAR cut, used when the face mesh finds no face
        mesh: bool = True  # mediapipe face mesh with irises: gaze and blinks (every frame: a blink lasts 3-10)
        blink_ratio: float = 0.65  # mesh EAR below this x the clip's open-eye level = eyes closed
        gaze_central: float = 0.3  # |x| and |y + 0.1| below this (half eye widths) on both eyes = looking ahead
        body_every: int = 10  # mediapipe pose and hands on every 10th frame (2.5 Hz): ~35 + ~30 ms a frame
        person_visibility: float = 0.5  # mean visibility of nose and shoulders for "a person is there"
        min_hand_score: float = 0.8  # mediapipe handedness confidence of a hand that counts
        min_hand_face: float = 0.4  # a hand spans at least this x the face height (a mouth is not a hand)

    def process(self, item: Item) -> Output:
        c = self.config
        video = load_video(item)
        n, h, w = video.num_frames, video.frames.shape[1], video.frames.shape[2]
        n_faces, boxes = self._detect(video.frames)
        lms, pose, sig = self._dlib_signals(video.frames, n_faces, boxes)
        face_h = (boxes[:, 3] - boxes[:, 1]) / h
        single = (n_faces == 1) & (np.nan_to_num(face_h) >= c.min_face_frac)
        eligible_mask = close_gaps(single, c.detect_every + 1)
        eligible = runs(eligible_mask, c.min_eligible)
        has = n_faces > 0

        def mean(x):
            return float(np.nanmean(x)) if np.isfinite(x).any() else None

        values = {
            "frames": n, "width": w, "height": h, "eligible": eligible, "no_person": runs(n_faces == 0, 3), "second_speaker": runs(n_faces >= 2, 3),
            "face_fraction": float(has.mean()), "eligible_fraction": float(sum(b - a for a, b in eligible) / max(n, 1)),
            "mouth_open_mean": mean(sig["mouth_open"]), "mouth_open_std": float(np.nanstd(sig["mouth_open"]))
            if has.any() else None, "teeth_mean": mean(sig["teeth"]), "clarity_mean": mean(sig["clarity"]),
            "face_luma_mean": mean(sig["face_luma"]), "light_imbalance_mean": mean(sig["light_imbalance"]),
            "yaw_abs_mean": mean(np.abs(pose[:, 0])), "pitch_abs_mean": mean(np.abs(pose[:, 1])),
            "head_pose_range_deg": pose_range(pose) if has.any() else None,
            "unavailable": {},
        }
        arrays = {"n_faces": n_faces, "box": boxes, "landmarks": lms, "pose": pose, **sig}
        self._eyes(video.frames, has, sig["ear"], values, arrays)
        self._body(video.frames, boxes, eligible_mask, values, arrays)
        return Output(values=values, arrays=arrays)

    # -- dlib: faces, 68 landmarks, head pose, mouth, teeth, clarity, lighting --------------------------------------
    def _detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from avatarv.media import detect_faces

        n = len(frames)
        n_faces = np.zeros(n, np.int64)
        boxes = np.full((n, 4), np.nan, np.float32)
        held: list = []
        for t in range(n):
            if t % self.config.detect_every == 0:
                held = detect_faces(frames[t])
                if not held:  # an under-exposed frame: try again with its exposure stretched
                    f = frames[t]
                    gain = 110.0 / max(float(f.mean()), 1.0)
                    if gain > 1.5:
                        held = detect_faces(np.clip(f.astype(np.float32) * gain, 0, 255).astype(np.uint8))
                if not held:  # a defocused frame: try again unsharp-masked
                    held = detect_faces(unsharp(frames[t]))
            n_faces[t] = len(held)
            if held:
                b = held[0]
                boxes[t] = (b.left, b.top, b.right, b.bottom)
        return n_faces, boxes

    def _dlib_signals(self, frames: np.ndarray, n_faces: np.ndarray, boxes: np.ndarray):
        import cv2

        from avatarv.eval.faces import dlib_shape

        n, h, w = frames.shape[:3]
        lms = np.full((n, 68, 2), np.nan, np.float32)
        pose = np.full((n, 3), np.nan, np.float32)
        sig = {k: np.full(n, np.nan, np.float32) for k in ("mouth_open", "ear", "clarity", "face_luma",
                                                           "light_imbalance", "teeth")}
        for t in np.flatnonzero(n_faces > 0):
            f = frames[t]
            if f.mean() < 50:  # landmarks and colour tests on the exposure-stretched frame
                f = np.clip(f.astype(np.float32) * (110.0 / max(float(f.mean()), 1.0)), 0, 255).astype(np.uint8)
            shape = dlib_shape(f, boxes[t], 68)
            lm = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
            lms[t] = lm
            pose[t] = head_pose(lm, w, h)
            sig["mouth_open"][t] = mouth_openness(lm)
            sig["ear"][t] = eye_aspect_ratio(lm)
            sig["teeth"][t] = teeth_fraction(f, lm)
            x0, y0, x1, y1 = (int(v) for v in boxes[t])
            crop = cv2.cvtColor(f[max(y0, 0):y1, max(x0, 0):x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
            if crop.size >= 16:
                sig["clarity"][t] = cv2.Laplacian(crop, cv2.CV_32F).var() / (crop.var() + 1.0)
                sig["face_luma"][t] = crop.mean()
                half = crop.shape[1] // 2
                sig["light_imbalance"][t] = abs(crop[:, :half].mean() - crop[:, half:].mean()) / (crop.mean() + 1.0)
        return lms, pose, sig

    # -- mediapipe face mesh: gaze and blinks ------------------------------------------------------------------
    def _eyes(self, frames: np.ndarray, has_face: np.ndarray, dlib_ear: np.ndarray, values: dict, arrays: dict):
        c = self.config
        n = len(frames)
        seconds = max(n / 25.0, 1e-6)
        points = np.full((n, 478, 3), np.nan, np.float32)
        if c.mesh:
            from avatarv.media.face_mesh import face_mesh

            points = face_mesh(frames).points  # [T, 478, 3]
        meshed = np.isfinite(points[:, 0, 0])
        gaze = iris_gaze(points)  # [T, 2, 2]
        ear = mesh_eye_aspect_ratio(points)
        # the mesh when it found the face on at least half the frames dlib did, else dlib's EAR (world faces)
        use_mesh = c.mesh and meshed.sum() >= 0.5 * max(int(has_face.sum()), 1) and meshed.any()
        blinks = (blink_events(ear, c.blink_ratio) if use_mesh
                  else runs(np.nan_to_num(dlib_ear, nan=1.0) < c.blink_ear, 1))
        central = np.all((np.abs(gaze[..., 0]) < c.gaze_central) & (np.abs(gaze[..., 1] + 0.1) < c.gaze_central), 1)
        values.update({
            "blinks": len(blinks), "blink_events": blinks, "blink_rate_hz": len(blinks) / seconds,
            "blink_rate_per_min": 60.0 * len(blinks) / seconds, "blink_source": "mesh" if use_mesh else "dlib",
            "mesh_fraction": float(meshed.mean()),
        })
        if meshed.any():
            values.update({
                "gaze_central_fraction": float(central[meshed].mean()),
                "gaze_x_mean": float(np.nanmean(gaze[..., 0])), "gaze_y_mean": float(np.nanmean(gaze[..., 1])),
                "gaze_x_std": float(np.nanstd(gaze[..., 0].mean(1))),
                "gaze_away": runs(meshed & ~central, 12),  # off-centre for 0.5 s or more
            })
        else:
            values["unavailable"]["gaze"] = ("face mesh disabled (config mesh=false)" if not c.mesh
                                             else "mediapipe face mesh found no face")
        arrays.update(mesh=points, gaze=gaze, mesh_ear=ear.astype(np.float32))

    # -- mediapipe pose and hands: a person (not only a face), body pose, hands --------------------------------------
    def _body(self, frames: np.ndarray, boxes: np.ndarray, eligible_mask: np.ndarray, values: dict, arrays: dict):
        from avatarv.media.body import (
            L_SHOULDER,
            R_SHOULDER,
            body_pose,
            hand_landmarks,
            hand_quality,
            hand_span,
            person_present,
        )

        c = self.config
        n, h, w = frames.shape[:3]
        every = c.body_every
        has_face = np.isfinite(boxes[:, 0])
        body = body_pose(frames, every)  # [T, 33, 4], NaN off the stride
        person = hold(person_present(body, c.person_visibility), every)  # [T]
        hands = hand_landmarks(frames, every)
        sampled_count = np.zeros(n, np.int64)
        quality = np.full(n, np.nan, np.float32)
        rejected = 0
        for t in range(0, n, every):
            q = []
            for k in np.flatnonzero(np.isfinite(hands.score[t])):
                # seen on the real clips: a "hand" of score 0.53 fitted on a speaking mouth, a third of a face tall
                face_h = boxes[t, 3] - boxes[t, 1] if has_face[t] else 0.0
                if hands.score[t, k] < c.min_hand_score or hand_span(hands.landmarks[t, k]) < c.min_hand_face * face_h:
                    rejected += 1
                    continue
                q.append(hand_quality(hands.landmarks[t, k], hands.world[t, k], hands.score[t, k], w, h))
            sampled_count[t] = len(q)
            if q:
                quality[t] = max(q)
        count = hold(sampled_count, every)  # [T]
        shoulder = body[:, L_SHOULDER, :2] - body[:, R_SHOULDER, :2]  # subject's right (image-left) -> left
        tilt = np.degrees(np.arctan2(shoulder[:, 1], shoulder[:, 0]))  # 0 = level shoulders
        seen = np.isfinite(tilt)
        sampled = np.arange(0, n, every)
        values.update({
            "person": runs(person, 3), "person_fraction": float(person.mean()),
            "no_human": runs(~person & ~has_face, 3),
            "eligible_person": runs(eligible_mask & person, c.min_eligible),
            "body_every": every,
            "shoulder_tilt_abs_mean": float(np.mean(np.abs(tilt[seen]))) if seen.any() else None,
            "hands": runs(count > 0, 3), "hands_fraction": float((sampled_count[sampled] > 0).mean()),
            "hands_rejected": rejected,
            "hand_quality_mean": float(np.nanmean(quality)) if np.isfinite(quality).any() else None,
        })
        arrays.update(body_pose=body, person=person, hand_count=count.astype(np.int64),
                      hand_landmarks=hands.landmarks, hand_quality=quality)
