"""Consent for an avatar: is the person in the reference video the person saying the challenge phrase, live?

``verify_consent(reference, consent, challenge, policy)`` runs every check it can and returns a
:class:`ConsentDecision`: ``verified`` only when all pass, one line in ``reasons`` per failed check (the line
starts with the check's name: ``challenge``, ``media``, ``face``, ``identity``, ``phrase``, ``liveness``), and
every score with the thresholds used. Storing the decision and the files, and refusing generation without a
verified decision, is the server's job; this module decides.

Checks, in order:

1. challenge: not expired (``Challenge.expired``).
2. media: both files pass ``avatarv.media`` validation (``probe`` + ``read_video``: missing, empty, corrupt,
   truncated, no video stream; the consent clip must have audio) and are not longer than the policy allows.
3. face: dlib HOG (``avatarv.media.detect_faces``, the face check of ``avatarv inspect``) finds a face in at least
   ``min_face_fraction`` of the frames looked at, in each video.
4. identity: dlib ResNet descriptors (``avatarv.eval.identity``) of the largest face in ``identity_frames`` frames
   spread over each video; each video's identity is the mean descriptor of its frames (frames farther than dlib's
   0.6 from the coordinate-wise median descriptor are left out: a misdetection cannot pull it); the score is the
   Euclidean distance between the two means, compared with ``max_identity_distance``. Averaging frames cancels
   pose and expression noise: on the real clips it separates people 2.9x better than the median frame-pair
   distance (same person <= 0.16 vs different >= 0.47, against 0.38 vs 0.51). It is not on the scale of dlib's
   per-image 0.6 rule; the median pair distance is reported beside it.
5. phrase: Whisper tiny.en transcribes the consent audio; the phrase's word error rate is taken against the
   best-aligned window of the transcript (approximate substring matching, Sellers 1980: words said before or
   after the phrase cost nothing), so "I agree, apple river ..." passes. Compared with ``max_phrase_wer``.
6. liveness, two scores on the consent clip at ``analysis_fps``: face motion (median over consecutive frames of
   the mean absolute grey-level change inside the face box, 64 x 64 crop) and mouth movement (90th minus 10th
   percentile of the inner-lip gap over the eye-to-mouth distance, dlib 68 landmarks). A still picture looped
   into a video has no face motion; a photo panned or zoomed under a voice-over has motion but a rigid mouth.

Every threshold default is measured on the real clips of ``../shared/real`` by
``benchmarks/consent_thresholds.py`` (results in ``benchmarks/results/consent-thresholds.md``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avatarv.errors import InputError
from avatarv.media import Video, detect_faces, probe, read_video
from avatarv.serve.challenge import Challenge

Box = tuple[float, float, float, float]  # (x1, y1, x2, y2) pixels
DLIB_IDENTITY_DISTANCE = 0.39  # see ConsentPolicy


@dataclass
class ConsentPolicy:
    """Thresholds and analysis settings. Defaults measured by ``benchmarks/consent_thresholds.py``."""

    # Measured on the five real clips (benchmarks/results/consent-thresholds.md), each a threshold in the gap:
    # identity: distance of mean dlib descriptors; same person <= 0.314, different people >= 0.468 -> midpoint
    max_identity_distance: float = DLIB_IDENTITY_DISTANCE
    # phrase: 5-word phrases said by piper: WER <= 0.6 (mean 0.07, 1 of 19 above 0.4); other phrases >= 1.0 -> 0.8; the
    # 0.2-step below it, capped so that 3 of the 5 words must be heard
    max_phrase_wer: float = 0.4
    # face motion, grey levels per frame at 12.5 fps: stills (also with pixel noise) <= 0.038, real >= 1.30
    min_face_motion: float = 0.22
    # mouth movement, p90 - p10 of mouth openness: stills and panned photos <= 0.029, real >= 0.081
    min_mouth_movement: float = 0.049
    min_face_fraction: float = 0.5  # of the frames looked at, in each video
    identity_frames: int = 16  # frames per video whose descriptors are averaged
    analysis_fps: float = 12.5  # consent clip: liveness and face tracking (mouth syllables are 3-6 Hz)
    reference_fps: float = 2.0  # reference clip: the evaluation protocol's per-frame rate
    detect_every: int = 3  # consent clip: detect every n-th frame, hold the box in between
    analysis_side: int = 480  # frames with a shorter side above this are scaled down to it
    max_consent_s: float = 30.0
    max_reference_s: float = 300.0
    identity_backend: str = "dlib"  # the threshold above is for dlib; another backend needs its own
    identity_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.identity_backend != "dlib" and self.max_identity_distance == DLIB_IDENTITY_DISTANCE:
            raise ValueError(f"max_identity_distance {DLIB_IDENTITY_DISTANCE} was measured for dlib descriptors; "
                             f"measure one for {self.identity_backend!r} (benchmarks/consent_thresholds.py) and pass it")

    def thresholds(self) -> dict:
        keys = ("max_identity_distance", "max_phrase_wer", "min_face_motion", "min_mouth_movement",
                "min_face_fraction")
        return {k: getattr(self, k) for k in keys} | {"identity_backend": self.identity_backend}


@dataclass
class ConsentDecision:
    """The outcome: ``verified`` only if ``reasons`` is empty; ``scores`` holds every measured number."""

    verified: bool
    reasons: list[str]
    scores: dict
    reference: str = ""
    consent: str = ""
    challenge: dict = field(default_factory=dict)
    decided_at: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=float)


# --- analysis of one clip -------------------------------------------------------------------------------------------


@dataclass
class FaceTrack:
    """The largest face per frame of a clip: ``boxes[t]`` (held between detections) or None."""

    boxes: list[Box | None]
    detected: list[int]  # frames where the detector ran and found a face
    looked: int  # frames where the detector ran

    @property
    def face_fraction(self) -> float:
        return len(self.detected) / max(self.looked, 1)


def load_clip(path: str | Path, policy: ConsentPolicy, fps: float, max_s: float, require_audio: bool) -> Video:
    """Validated frames at ``fps`` (scaled down to ``policy.analysis_side``); ``InputError`` names what is wrong."""
    info = probe(path)
    if not info.has_video:
        raise InputError("no video stream (expected a video of a face)", path)
    if require_audio and not info.has_audio:
        raise InputError("no audio stream (expected the challenge phrase spoken in the video)", path)
    if info.duration is not None and info.duration > max_s:
        raise InputError(f"{info.duration:.1f} s long, at most {max_s:g} s accepted", path)
    side = min(info.width or 0, info.height or 0)
    size = policy.analysis_side if side > policy.analysis_side else None
    return read_video(path, fps=fps, size=size, require_audio=require_audio)


def track_face(frames: np.ndarray, every: int = 1) -> FaceTrack:
    """Largest dlib HOG face every ``every`` frames; each frame takes the nearest detection within ``every``."""
    n = len(frames)
    looked = list(range(0, n, max(every, 1)))
    found: dict[int, Box] = {}
    for t in looked:
        faces = detect_faces(frames[t])
        if faces:
            b = faces[0]
            found[t] = (float(b.left), float(b.top), float(b.right), float(b.bottom))
    boxes: list[Box | None] = []
    keys = np.array(sorted(found))
    for t in range(n):
        if keys.size == 0:
            boxes.append(None)
            continue
        k = int(keys[np.argmin(np.abs(keys - t))])
        boxes.append(found[k] if abs(k - t) < max(every, 1) else None)
    return FaceTrack(boxes=boxes, detected=sorted(found), looked=len(looked))


def identity_embedder(policy: ConsentPolicy):
    from avatarv.eval.identity import get_identity_embedder

    return get_identity_embedder(policy.identity_backend, **policy.identity_options)


def face_descriptors(frames: np.ndarray, track: FaceTrack, count: int, embedder) -> np.ndarray:
    """Descriptors ``[k, D]`` of the tracked face in up to ``count`` detected frames spread over the clip."""
    if not track.detected:
        return np.zeros((0, getattr(embedder, "dim", 0)))
    pick = np.unique(np.linspace(0, len(track.detected) - 1, min(count, len(track.detected))).round().astype(int))
    chosen = [track.detected[i] for i in pick]
    return np.stack([embedder.embed_faces(frames[t], [track.boxes[t]])[0] for t in chosen])


def identity_centroid(descriptors: np.ndarray, outlier: float = 0.6) -> np.ndarray:
    """Mean descriptor ``[D]`` of the frames within ``outlier`` (dlib's same-face rule) of the coordinate-wise median."""
    median = np.median(descriptors, axis=0)
    keep = np.linalg.norm(descriptors - median, axis=-1) <= outlier
    return descriptors[keep].mean(0) if keep.any() else median


def identity_scores(reference: np.ndarray, consent: np.ndarray) -> dict:
    """Two sets of descriptors ``[R, D]``, ``[C, D]`` -> the score (distance of their centroids) and diagnostics."""
    pairs = np.linalg.norm(reference[:, None] - consent[None], axis=-1)  # [R, C]
    mean_r, mean_c = identity_centroid(reference), identity_centroid(consent)
    cosine = float(mean_r @ mean_c / max(np.linalg.norm(mean_r) * np.linalg.norm(mean_c), 1e-12))
    return {"identity_distance": float(np.linalg.norm(mean_r - mean_c)), "identity_similarity": cosine,
            "identity_pair_distance_median": float(np.median(pairs)), "identity_frames": [len(reference), len(consent)]}


def face_motion(frames: np.ndarray, track: FaceTrack, side: int = 64) -> float:
    """Median over consecutive frame pairs of the mean absolute grey change (0-255) inside frame t's face box."""
    import cv2

    diffs = []
    for t in range(len(frames) - 1):
        box = track.boxes[t]
        if box is None:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        crops = [cv2.resize(cv2.cvtColor(np.ascontiguousarray(f[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY), (side, side),
                            interpolation=cv2.INTER_AREA).astype(np.float32) for f in (frames[t], frames[t + 1])]
        diffs.append(float(np.abs(crops[1] - crops[0]).mean()))
    return float(np.median(diffs)) if diffs else 0.0


def mouth_series(frames: np.ndarray, track: FaceTrack) -> np.ndarray:
    """Mouth openness per frame ``[T]`` (NaN without a face): inner-lip gap over the eye-to-mouth distance."""
    from avatarv.data.curation.stages.faces import mouth_openness
    from avatarv.eval.faces import dlib_shape

    out = np.full(len(frames), np.nan)
    for t, box in enumerate(track.boxes):
        if box is not None:
            shape = dlib_shape(frames[t], box, 68)
            out[t] = mouth_openness(np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64))
    return out


def mouth_movement(openness: np.ndarray) -> float:
    """Spread of mouth openness: 90th minus 10th percentile over the frames with a face (0 without any)."""
    x = openness[np.isfinite(openness)]
    return float(np.percentile(x, 90) - np.percentile(x, 10)) if x.size >= 2 else 0.0


# --- the phrase -----------------------------------------------------------------------------------------------------


def phrase_wer(phrase: str, transcript: str) -> tuple[float, str]:
    """Word error rate of ``phrase`` against its best-aligned window of ``transcript``, and that window.

    Levenshtein distance with free leading and trailing transcript words (Sellers' approximate substring
    matching): ``min over windows w of edits(phrase, w) / len(phrase)``. Words as ``avatarv.voice.asr``
    normalises them (lower case, no punctuation).
    """
    from avatarv.voice.asr import normalise_words

    ref, hyp = normalise_words(phrase), normalise_words(transcript)
    if not ref:
        raise ValueError("empty challenge phrase")
    # dist[j]: edits aligning ref[:i] to a window hyp[s:j]; start[j] = that window's s
    dist, start = np.zeros(len(hyp) + 1, np.int64), np.arange(len(hyp) + 1)
    for i, word in enumerate(ref, 1):
        prev, prev_start = dist, start
        dist, start = np.empty_like(prev), np.empty_like(prev_start)
        dist[0], start[0] = i, 0
        for j in range(1, len(hyp) + 1):
            options = ((prev[j - 1] + (word != hyp[j - 1]), prev_start[j - 1]),  # match / substitute
                       (prev[j] + 1, prev_start[j]),  # phrase word missing from the transcript
                       (dist[j - 1] + 1, start[j - 1]))  # extra word inside the window
            dist[j], start[j] = min(options, key=lambda o: o[0])
    end = int(np.argmin(dist))
    return float(dist[end]) / len(ref), " ".join(hyp[int(start[end]) : end])


def transcribe_clip(video: Video) -> str:
    from avatarv.voice.asr import transcribe

    return transcribe(video.audio).text if video.audio is not None and video.audio.size else ""


# --- the decision ---------------------------------------------------------------------------------------------------


def verify_consent(
    reference_path: str | Path,
    consent_path: str | Path,
    challenge: Challenge,
    policy: ConsentPolicy | None = None,
    now: float | None = None,
) -> ConsentDecision:
    """Decide whether ``consent_path`` is the person of ``reference_path`` saying ``challenge.phrase``, live.

    Runs every check whose inputs are usable, so a refusal lists everything that is wrong at once.
    ``now`` (Unix seconds) is the instant the consent video was received; it defaults to the wall clock.
    """
    policy = policy or ConsentPolicy()
    now = time.time() if now is None else float(now)
    reasons: list[str] = []
    scores: dict = {"thresholds": policy.thresholds()}
    if challenge.expired(now):
        reasons.append(f"challenge: expired {now - challenge.expires_at:.0f} s ago (valid for "
                       f"{challenge.expires_at - challenge.issued_at:.0f} s): request a new phrase and record again")

    videos: dict[str, Video] = {}
    for role, path, fps, max_s, audio in (("reference", reference_path, policy.reference_fps, policy.max_reference_s,
                                          False),
                                         ("consent", consent_path, policy.analysis_fps, policy.max_consent_s, True)):
        try:
            videos[role] = load_clip(path, policy, fps, max_s, require_audio=audio)
        except InputError as err:
            reasons.append(f"media: {role} video {err}")

    tracks: dict[str, FaceTrack] = {}
    for role, video in videos.items():
        track = track_face(video.frames, 1 if role == "reference" else policy.detect_every)
        scores[f"{role}_face_fraction"] = track.face_fraction
        if track.face_fraction < policy.min_face_fraction:
            reasons.append(f"face: no face found in the {role} video ({len(track.detected)} of {track.looked} "
                           f"frames looked at have one, {policy.min_face_fraction:.0%} needed): film one person "
                           "facing the camera")
        if track.detected:
            tracks[role] = track

    if len(tracks) == 2:
        embedder = identity_embedder(policy)
        descs = {role: face_descriptors(videos[role].frames, tracks[role], policy.identity_frames, embedder)
                 for role in tracks}
        scores.update(identity_scores(descs["reference"], descs["consent"]))
        if scores["identity_distance"] > policy.max_identity_distance:
            reasons.append(f"identity: the face in the consent video is not the person of the reference video "
                           f"(distance {scores['identity_distance']:.2f} > {policy.max_identity_distance:.2f}, "
                           f"{embedder.name} face descriptors)")

    if "consent" in videos:
        transcript = transcribe_clip(videos["consent"])
        wer, window = phrase_wer(challenge.phrase, transcript)
        scores.update(transcript=transcript, phrase_wer=wer, phrase_window=window)
        if wer > policy.max_phrase_wer:
            heard = f"heard: {transcript!r}" if transcript else "no speech heard"
            reasons.append(f"phrase: the challenge phrase {challenge.phrase!r} was not said (word error rate "
                           f"{wer:.2f} > {policy.max_phrase_wer:.2f}; {heard})")

    if "consent" in tracks:
        frames, track = videos["consent"].frames, tracks["consent"]
        scores["face_motion"] = face_motion(frames, track)
        scores["mouth_movement"] = mouth_movement(mouth_series(frames, track))
        if scores["face_motion"] < policy.min_face_motion:
            reasons.append(f"liveness: the consent video looks like a still picture (face motion "
                           f"{scores['face_motion']:.2f} < {policy.min_face_motion:.2f} grey levels per frame)")
        if scores["mouth_movement"] < policy.min_mouth_movement:
            reasons.append(f"liveness: the mouth does not move in the consent video (mouth movement "
                           f"{scores['mouth_movement']:.3f} < {policy.min_mouth_movement:.3f}): say the phrase on "
                           "camera")

    return ConsentDecision(verified=not reasons, reasons=reasons, scores=scores, reference=str(reference_path),
                           consent=str(consent_path), challenge=challenge.to_dict(), decided_at=now)
