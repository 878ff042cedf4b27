"""Content filter (seed: a VLM drops screencasts, game footage and photo-like content): per shot, one label.

The default is measurable, offline and honest about what it sees. Per frame (128 px):

- ``flat``: the fraction of pixels whose 3 x 3 neighbourhood spans <= 2 grey levels (rendered flat colour;
  a camera's sensor noise and shading leave few such pixels: 0.02-0.32 on the five real clips);
- ``palette``: how many colours (4 bits per channel) cover 95 % of the pixels (screens and games use a few:
  17-27 on world footage; real clips 48-194);
- ``edges``: the fraction of pixels with a Sobel gradient above 200 (text strokes: 0.33 on a world screen of
  text, 0.04-0.16 on real clips);
- ``residual`` (``rigid_residual``): frame t - 4 warped onto frame t by the best affine fit of the optical
  flow between them, and the 99.5th percentile of what is left (smoothed, over the frame's contrast). A still
  picture, or one under a Ken-Burns zoom or pan, moves as one rigid sheet: 0 for a still and a steady 0.10-0.25
  for a Ken-Burns zoom on world footage (resampling), while a speaking person moves mouth and head against the
  background: median 0.12-0.88 on the five real clips, varying as they speak (10th to 90th percentile x2 to x6).

Per shot (``scenes``; the whole video without it), over its core (``edge_trim`` frames left out at each end,
where a fade or dissolve mixes in the next shot: one still photo between two fades read 0.84 still with them),
with the medians of the frame values:

- screencast: ``palette <= max_palette`` and ``edges >= screen_edges`` (a few colours and dense text);
- game: ``palette <= max_palette``, ``flat >= game_flat``, ``edges >= game_edges`` and not screencast (large
  flat-colour areas with hard-edged shapes: world game shots 0.058-0.080; an empty plain studio, as flat and
  as few-coloured, 0.019: it was the game rule's only false positive on 6 x 60 s of world footage);
  both need a grey ``contrast`` (std) of at least ``min_contrast`` (a black or blank screen is neither);
- photo: the shot lasts ``min_photo_s`` or more and either at least ``still_frac`` of its frames have
  ``residual < still_residual`` (a still) or its 90th percentile is below ``rigid_residual`` and at most
  ``rigid_spread`` x its 10th percentile (a rigid, steady motion). A frozen *stretch* inside a moving shot is
  the prefilter's ``static``, not a photo: the whole shot must qualify. The spread decides, not the level:
  Ken-Burns photos on world footage read 90th percentiles 0.12-0.25 with spreads x1.3-1.5 (the cut was 0.18
  until world seed 1 showed zooms at 0.20 and 0.25), the real clips spreads x2.4-x5.8 (the calmest, a man in a
  suit, has the lowest level, 0.25, and the largest spread).

When an upstream ``faces`` ran, a shot where one face is seen in at least ``face_veto`` of the frames is
never screencast or game (a talking head before a flat wall), and a photo must show one face in at least that
share of its frames: a photo-like shot is a still picture *of a person*; an empty room under a slow camera pan
moves as rigidly as a Ken-Burns photo (world no-person shots: residual 0.07-0.12) and is the faces stage's
"no person", not a photo. Flags are frame runs; the evaluation scores
them on one-second windows like the other filters.

A VLM can replace the rules: ``vlm_path`` names a local folder holding a ``transformers`` image-text-to-text
model (``config.json`` + weights + processor files); each shot's middle frame is asked ``PROMPT`` and the
first of ``LABELS`` in the answer is the shot's label. Without that folder the stage is ``unavailable``
(it never falls back silently); leave ``vlm_path`` empty for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video, runs, shots_of

SIDE = 128
LAG = 4  # frames between the two pictures compared for rigid motion
KINDS = ("screencast", "game", "photo")
LABELS = ("screencast", "game", "photo", "camera")
PROMPT = ("Is this picture a screen recording of a computer, video game footage, a still photograph, or live "
          "camera footage of a person? Answer with one word: screencast, game, photo or camera.")


def frame_signals(frame: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """[H, W, 3] uint8 -> (flat, palette, edges, grey [SIDE, SIDE] uint8) (module docstring)."""
    import cv2

    img = cv2.resize(frame, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    k = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(g, k).astype(np.int16) - cv2.erode(g, k)
    flat = float((spread <= 2).mean())
    q = (img >> 4).astype(np.int32)
    counts = np.sort(np.bincount((q[..., 0] * 256 + q[..., 1] * 16 + q[..., 2]).ravel(), minlength=4096))[::-1]
    palette = float(np.searchsorted(np.cumsum(counts), 0.95 * counts.sum()) + 1)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    edges = float((np.hypot(gx, gy) > 200).mean())
    return flat, palette, edges, g


@lru_cache(maxsize=4)
def _affine_basis(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel grid of an s x s frame: xx, yy [s, s], the affine design matrix A [s*s, 3] and its pseudo-inverse."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    a = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size, np.float32)], 1)
    return xx, yy, a, np.linalg.pinv(a).astype(np.float32)


def rigid_residual(earlier: np.ndarray, cur: np.ndarray, dis=None) -> float:
    """How much of ``cur`` a rigid (affine) motion of ``earlier`` does not explain: DIS optical flow from
    ``cur`` back to ``earlier``, the least-squares affine fit of that flow, ``earlier`` warped by it, and the
    99.5th percentile of the smoothed absolute difference (sigma 2 px, 8 px border left out) over ``cur``'s
    contrast. Grey [SIDE, SIDE] uint8 frames."""
    import cv2

    dis = dis or cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    s = cur.shape[0]
    xx, yy, a, pinv = _affine_basis(s)
    flow = dis.calc(cur, earlier, None).reshape(-1, 2)  # where each pixel of cur is in earlier
    fitted = a @ (pinv @ flow)  # [P, 2] the least-squares affine flow
    mapx = xx + fitted[:, 0].reshape(s, s)
    mapy = yy + fitted[:, 1].reshape(s, s)
    warped = cv2.remap(earlier, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    diff = cv2.GaussianBlur(np.abs(warped.astype(np.float32) - cur), (0, 0), 2.0)[8:-8, 8:-8]
    return float(np.percentile(diff, 99.5) / (cur.std() + 1.0))


def video_signals(frames: np.ndarray, lag: int = LAG, every: int = 2) -> dict[str, np.ndarray]:
    """[T, H, W, 3] -> per-frame ``flat``, ``palette``, ``edges``, ``contrast`` (grey std), ``residual`` (against
    frame t - ``lag``, on every ``every``-th frame; NaN elsewhere and for the first ``lag`` frames) ([T] float32)."""
    import cv2

    n = len(frames)
    out = {k: np.zeros(n, np.float32) for k in ("flat", "palette", "edges", "contrast", "residual")}
    out["residual"][:] = np.nan
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    greys = []
    for t, f in enumerate(frames):
        out["flat"][t], out["palette"][t], out["edges"][t], g = frame_signals(f)
        out["contrast"][t] = g.std()
        greys.append(g)
        if t >= lag and t % every == 0:
            out["residual"][t] = rigid_residual(greys[t - lag], g, dis)
        if t >= lag:
            greys[t - lag] = None
    return out


def parse_vlm_answer(text: str) -> str:
    """The first of ``LABELS`` named in a VLM's answer (``camera`` when none is)."""
    low = text.lower()
    found = [(low.find(lab), lab) for lab in LABELS if lab in low]
    return min(found)[1] if found else "camera"


class LocalVLM:
    """An image-text-to-text model loaded with ``transformers`` from a local folder (no hub access)."""

    def __init__(self, path: str | Path):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(str(path), local_files_only=True).eval()

    def ask(self, frame: np.ndarray, prompt: str = PROMPT, max_new_tokens: int = 8) -> str:
        import torch
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(images=Image.fromarray(frame), text=text, return_tensors="pt")
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]


def vlm_missing(path: str) -> str | None:
    """Why the VLM folder cannot be used (None when it looks loadable)."""
    p = Path(path)
    if not p.is_dir():
        return f"content VLM folder {path} does not exist"
    if not (p / "config.json").is_file():
        return f"content VLM folder {path} has no config.json (a transformers model folder is expected)"
    return None


class Content(Stage):
    name = "content"
    version = "5"
    inputs = ("normalise", "scenes", "faces")
    resources = Resources(cpu=1.0, memory_mb=1024)

    @dataclass(frozen=True)
    class Config:
        max_palette: float = 60.0
        min_contrast: float = 20.0
        screen_edges: float = 0.12
        game_flat: float = 0.6
        game_edges: float = 0.035
        edge_trim: int = 10  # frames left out at each end of a shot (at most a tenth of it)
        still_residual: float = 0.05
        still_frac: float = 0.9
        rigid_residual: float = 0.35
        rigid_spread: float = 2.0
        min_photo_s: float = 2.0
        face_veto: float = 0.5
        vlm_path: str = ""

    def unavailable(self) -> str | None:
        return vlm_missing(self.config.vlm_path) if self.config.vlm_path else None

    def _face_fraction(self, item: Item, n: int) -> np.ndarray | None:
        faces = item.upstream.get("faces")
        if faces is None or not faces.ok:
            return None
        nf = faces.array("n_faces")
        return (nf[:n] == 1) if len(nf) >= n else None

    def process(self, item: Item) -> Output:
        c = self.config
        why = self.unavailable()
        if why:
            return Output.unavailable(why)
        video = load_video(item)
        n = video.num_frames
        shots = shots_of(item, n)
        flags = {k: np.zeros(n, bool) for k in KINDS}
        per_shot = []
        if c.vlm_path:
            vlm = LocalVLM(c.vlm_path)
            for a, b in shots:
                label = parse_vlm_answer(vlm.ask(video.frames[(a + b) // 2]))
                if label in flags:
                    flags[label][a:b] = True
                per_shot.append({"start": a, "end": b, "label": label})
            arrays = {}
        else:
            sig = video_signals(video.frames)
            one_face = self._face_fraction(item, n)
            for a, b in shots:
                # the shot's core: a fade or dissolve (8-16 frames across a boundary) is neither shot's content
                trim = min(c.edge_trim, (b - a) // 10)
                ca, cb = a + trim, b - trim
                med = {k: float(np.nanmedian(sig[k][ca:cb])) for k in ("flat", "palette", "edges", "contrast")}
                res = sig["residual"][ca + LAG : cb]  # pairs within the shot
                res = res[np.isfinite(res)]
                lo, hi = (np.percentile(res, [10, 90]) if len(res) else (np.inf, np.inf))
                still = float((res < c.still_residual).mean()) if len(res) else 0.0
                rigid = bool(hi < c.rigid_residual and hi <= c.rigid_spread * lo)
                face = float(one_face[ca:cb].mean()) if one_face is not None else 0.0
                graphic = med["palette"] <= c.max_palette and med["contrast"] >= c.min_contrast and face < c.face_veto
                label = "camera"
                if graphic and med["edges"] >= c.screen_edges:
                    label = "screencast"
                elif graphic and med["flat"] >= c.game_flat and med["edges"] >= c.game_edges:
                    label = "game"
                elif ((still >= c.still_frac or rigid) and (b - a) >= c.min_photo_s * video.fps
                      and (one_face is None or face >= c.face_veto)):
                    label = "photo"
                if label in flags:
                    flags[label][a:b] = True
                per_shot.append({"start": a, "end": b, "label": label, **{k: round(v, 4) for k, v in med.items()},
                                 "still_fraction": round(still, 3), "residual_p10": round(float(lo), 4),
                                 "residual_p90": round(float(hi), 4), "face_fraction": round(face, 3)})
            arrays = {k: v for k, v in sig.items()}
        values = {"frames": n, "method": "vlm" if c.vlm_path else "rules", "shots": per_shot,
                  **{k: runs(flags[k], 1) for k in KINDS},
                  "fractions": {k: float(flags[k].mean()) for k in KINDS}}
        return Output(values=values, arrays={**arrays, **{f"is_{k}": flags[k] for k in KINDS}})
