"""Synthetic-speech detection (seed: "synthetic audio detection"): is this voice one avatarv can make?

The default detector is small and shipped (``assets/eval/synthetic_speech.safetensors``, trained by
``avatarv.data.curation.train_synthetic_speech``, ``make train-synthetic-speech``): a small neural network (one
hidden layer of 64 ReLU units, numpy at run time) over ``FEATURES`` of a ``WINDOW_S`` window of 16 kHz audio,
with four classes: ``real`` (real
recordings), ``piper`` (piper VITS, the product's TTS), ``espeak`` (espeak-ng formant voices) and ``matched``
(the voice engine's output matched to a sample: piper through WORLD pitch/timbre conversion).

Features (``window_features``), on a 40-band log-mel spectrogram (25 ms / 10 ms) of the window's voiced
frames (energy within 40 dB of the window's loudest): per band the standard deviation over time, the standard
deviation of the first difference (how the spectrum moves frame to frame: vocoders and formant synthesis are
smoother or more regular than a vocal tract), the time-averaged spectral shape with its mean removed (what the
synthesiser's filter leaves, minus the recording's overall level), and the spectral flatness' mean and spread.
The recording channel is taken out as far as a mean can: the per-band mean is compared to the window's
average, and the training data passes every class through the same random channels (band limits, tilt,
resonances, noise, reverb: ``avatarv.voice.channel``), so a clean studio sound is not what marks a voice as made.

The stage scores every ``HOP_S`` window that holds speech, and per shot (``scenes``; the whole video without)
flags the shot when the median, over its speech windows, of P(one of ``synthetic_classes``) is at least
``threshold`` (0.7: chosen on world footage, seed 0, 6 x 60 s: piper shots 0.988-1.0, the world's espeak
people at most 0.15 but one at 0.505). In the synthetic world every person speaks with espeak-ng, so the world benchmark runs it with
``synthetic_classes=("piper", "matched")``: there espeak is the natural voice.

A real anti-spoofing model can replace it: ``antispoof_path`` names a folder with ``config.json``
(``{"sample_rate": 16000, "window_s": 4.0, "spoof_index": 1}``) and ``model.onnx`` (an AASIST-style network
exported to ONNX: input ``[1, samples]`` float32, output ``[1, 2]`` logits, bona fide vs spoof). Without those
files the stage is ``unavailable``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import load_video, runs, shots_of

SAMPLE_RATE = 16000
WINDOW_S = 2.0
HOP_S = 1.0
N_MELS = 40
CLASSES = ("real", "piper", "espeak", "matched")
FEATURES = 3 * N_MELS + 2
ASSET = Path(__file__).resolve().parents[3] / "assets" / "eval" / "synthetic_speech.safetensors"


@lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=N_MELS, fmin=60, fmax=7600).astype(np.float32)


def log_mel(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N] 16 kHz -> (log-mel [F, 40], power spectrum [F, 257]) at 25 ms windows, 10 ms hop."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.asarray(wave, np.float32)
    if len(x) < 400:
        x = np.pad(x, (0, 400 - len(x)))
    frames = sliding_window_view(x, 400)[::160] * np.hanning(400).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2  # [F, 257]
    return np.log(power @ _mel_basis().T + 1e-8), power


def window_features(wave: np.ndarray) -> np.ndarray | None:
    """[N] 16 kHz (one window) -> [FEATURES] float32, or None when silent or fewer than 20 frames are voiced."""
    if not len(wave) or np.sqrt(np.mean(np.asarray(wave, np.float64) ** 2)) < 1e-4:
        return None
    mel, power = log_mel(wave)
    energy = mel.max(axis=1)
    voiced = energy > energy.max() - np.log(1e4)  # within 40 dB of the loudest frame
    if voiced.sum() < 20:
        return None
    m = mel[voiced]
    shape = m.mean(axis=0)
    delta = np.diff(mel, axis=0)[voiced[1:] & voiced[:-1]]
    flat = np.exp(np.log(power[voiced] + 1e-10).mean(axis=1)) / (power[voiced].mean(axis=1) + 1e-10)
    return np.concatenate([m.std(axis=0), delta.std(axis=0) if len(delta) > 1 else np.zeros(N_MELS),
                           shape - shape.mean(), [flat.mean(), flat.std()]]).astype(np.float32)


def windows(wave: np.ndarray, window_s: float = WINDOW_S, hop_s: float = HOP_S) -> list[tuple[int, np.ndarray]]:
    """(start sample, features) of every window of ``wave`` that holds speech (a short wave: one window)."""
    w, h = int(window_s * SAMPLE_RATE), int(hop_s * SAMPLE_RATE)
    starts = range(0, max(len(wave) - w, 0) + 1, h)
    out = []
    for s in starts:
        seg = wave[s : s + w]
        if np.sqrt(np.mean(seg.astype(np.float64) ** 2)) < 1e-3:  # silence
            continue
        f = window_features(seg)
        if f is not None:
            out.append((s, f))
    return out


@dataclass
class Detector:
    """The shipped classifier: standardise, one ReLU hidden layer, softmax over ``classes``."""

    mean: np.ndarray  # [FEATURES]
    scale: np.ndarray  # [FEATURES]
    w1: np.ndarray  # [FEATURES, H]
    b1: np.ndarray  # [H]
    w2: np.ndarray  # [H, classes]
    b2: np.ndarray  # [classes]
    classes: tuple[str, ...]

    @classmethod
    def load(cls, path: str | Path = ASSET) -> Detector:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            z = {k: f.get_tensor(k) for k in f.keys()}
            classes = tuple(json.loads(f.metadata()["detector"])["classes"])
        return cls(z["mean"], z["scale"], z["w1"], z["b1"], z["w2"], z["b2"], classes)

    def save(self, path: str | Path, info: dict | None = None) -> Path:
        """safetensors with one metadata entry, ``detector`` (JSON: ``classes`` and ``info``; one key because
        safetensors writes several in no fixed order): the same weights give the same bytes. Written to a
        temporary file, then renamed."""
        import os

        from safetensors.numpy import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tensors = {"mean": self.mean, "scale": self.scale, "w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}
        meta = json.dumps({"classes": list(self.classes), **(info or {})}, sort_keys=True)
        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(tmp),
                  metadata={"detector": meta})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path

    def proba(self, feats: np.ndarray) -> np.ndarray:
        """[K, FEATURES] -> [K, classes] probabilities."""
        h = np.maximum(((feats - self.mean) / self.scale) @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def synthetic_probability(self, feats: np.ndarray, synthetic=("piper", "espeak", "matched")) -> np.ndarray:
        """[K, FEATURES] -> [K] P(the voice is one of ``synthetic``)."""
        p = self.proba(feats)
        return p[:, [self.classes.index(c) for c in synthetic]].sum(axis=1)


def score_wave(wave: np.ndarray, detector: Detector | None = None, synthetic=("piper", "espeak", "matched")
               ) -> tuple[np.ndarray, np.ndarray]:
    """16 kHz wave -> (window start samples [K], P(synthetic) [K]) over its speech windows."""
    det = detector or Detector.load()
    ws = windows(wave)
    if not ws:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    starts = np.array([s for s, _ in ws])
    return starts, det.synthetic_probability(np.stack([f for _, f in ws]), synthetic).astype(np.float32)


class AntiSpoofONNX:
    """A local anti-spoofing network (``antispoof_path``: config.json + model.onnx, module docstring)."""

    def __init__(self, folder: str | Path):
        import onnxruntime

        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text())
        self.session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

    def spoof_probability(self, wave: np.ndarray) -> np.ndarray:
        w = int(self.config.get("window_s", 4.0) * SAMPLE_RATE)
        idx = int(self.config.get("spoof_index", 1))
        name = self.session.get_inputs()[0].name
        out = []
        for s in range(0, max(len(wave) - w, 0) + 1, w):
            seg = np.asarray(wave[s : s + w], np.float32)[None]
            z = self.session.run(None, {name: seg})[0][0].astype(np.float64)
            e = np.exp(z - z.max())
            out.append(e[idx] / e.sum())
        return np.array(out, np.float32)


def antispoof_missing(path: str) -> str | None:
    p = Path(path)
    for need in ("config.json", "model.onnx"):
        if not (p / need).is_file():
            return f"anti-spoofing folder {path}: {need} not found"
    return None


class SyntheticSpeech(Stage):
    name = "synthetic_speech"
    version = "2"
    inputs = ("normalise", "scenes")
    resources = Resources(cpu=1.0, memory_mb=512)

    @dataclass(frozen=True)
    class Config:
        threshold: float = 0.7
        synthetic_classes: tuple[str, ...] = ("piper", "espeak", "matched")
        model_path: str = ""  # "" = the shipped asset
        antispoof_path: str = ""

    def unavailable(self) -> str | None:
        c = self.config
        if c.antispoof_path:
            return antispoof_missing(c.antispoof_path)
        path = Path(c.model_path) if c.model_path else ASSET
        if not path.is_file():
            return f"synthetic-speech detector {path} not found (make train-synthetic-speech)"
        unknown = sorted(set(c.synthetic_classes) - set(CLASSES))
        if unknown:
            return f"synthetic_classes {unknown} unknown (known: {list(CLASSES)})"
        return None

    def process(self, item: Item) -> Output:
        c = self.config
        why = self.unavailable()
        if why:
            return Output.unavailable(why)
        video = load_video(item)
        n = video.num_frames
        if video.audio is None or not len(video.audio):
            return Output.unavailable("no sound track")
        from avatarv.voice.synth import to_16k

        wave = to_16k(np.asarray(video.audio, np.float32), int(video.sample_rate))
        if c.antispoof_path:
            model = AntiSpoofONNX(c.antispoof_path)
            w = int(model.config.get("window_s", 4.0) * SAMPLE_RATE)
            probs = model.spoof_probability(wave)
            starts = np.arange(len(probs)) * w
            win = w
        else:
            starts, probs = score_wave(wave, Detector.load(c.model_path or ASSET), tuple(c.synthetic_classes))
            win = int(WINDOW_S * SAMPLE_RATE)
        centre_frame = ((starts + win / 2) / SAMPLE_RATE * video.fps).astype(int)
        flag = np.zeros(n, bool)
        per_shot = []
        for a, b in shots_of(item, n):
            inside = (centre_frame >= a) & (centre_frame < b)
            p = float(np.median(probs[inside])) if inside.any() else float("nan")
            hit = bool(np.isfinite(p) and p >= c.threshold)
            flag[a:b] = hit
            per_shot.append({"start": a, "end": b, "windows": int(inside.sum()),
                             "p_synthetic": round(p, 4) if np.isfinite(p) else None, "synthetic": hit})
        values = {"frames": n, "method": "antispoof" if c.antispoof_path else "detector",
                  "synthetic": runs(flag, 1), "shots": per_shot,
                  "p_synthetic_median": float(np.median(probs)) if len(probs) else None}
        return Output(values=values, arrays={"window_start": starts, "p_synthetic": probs, "is_synthetic": flag})
