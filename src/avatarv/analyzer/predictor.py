"""Run the analyzer on frames: face box → crop → landmarks, pose, mouth, blink, smile, gaze per frame."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from avatarv.analyzer.crops import crop, crop_square, from_crop
from avatarv.analyzer.model import BOX_INPUT, POSE_SCALE, SIGNALS, BoxNet, FaceNet
from avatarv.errors import CheckpointError

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "world_analyzer.safetensors"  # package data


class WorldAnalyzer:
    def __init__(self, box_net: BoxNet, face_net: FaceNet, meta: dict | None = None):
        self.box_net, self.face_net = box_net.eval(), face_net.eval()
        self.meta = meta or {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> WorldAnalyzer:
        from safetensors.torch import load_file, safe_open

        path = Path(path) if path is not None else DEFAULT_WEIGHTS
        if not path.is_file():
            raise CheckpointError(f"{path}: analyzer weights not found (make train-analyzer)")
        with safe_open(str(path), "pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("avatarv", "{}"))
        state = load_file(str(path))
        width = int(meta.get("width", 16))
        box_net, face_net = BoxNet(width), FaceNet(width)
        for name, net in (("box.", box_net), ("face.", face_net)):
            sub = {k[len(name):]: v.float() for k, v in state.items() if k.startswith(name)}
            missing, unexpected = net.load_state_dict(sub, strict=False)
            if missing or unexpected:
                raise CheckpointError(f"{path}: analyzer weights do not match ({missing[:3]} {unexpected[:3]})")
        return cls(box_net, face_net, meta)

    @torch.no_grad()
    def predict(self, frames: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
        """frames [T, H, W, 3] uint8 RGB (square) → per-frame predictions in frame pixels / degrees."""
        t, h, w = frames.shape[:3]
        size = np.array([w, h, w, h], np.float32)
        boxes = np.empty((t, 4), np.float32)
        for i in range(0, t, batch):
            small = np.stack([cv2.resize(f, (BOX_INPUT, BOX_INPUT), interpolation=cv2.INTER_AREA)
                              for f in frames[i : i + batch]])
            x = torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255.0
            boxes[i : i + batch] = self.box_net(x).numpy() * size - 0.5
        squares = np.stack([crop_square(b) for b in boxes])
        out = np.empty((t, 136 + len(SIGNALS)), np.float32)
        for i in range(0, t, batch):
            crops = np.stack([crop(f, s) for f, s in zip(frames[i : i + batch], squares[i : i + batch], strict=True)])
            x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
            out[i : i + batch] = self.face_net(x).numpy()
        lms = np.stack([from_crop(o[:136].reshape(68, 2), s) for o, s in zip(out, squares, strict=True)])
        sig = out[:, 136:]
        res = {"landmarks": lms.astype(np.float32), "box": boxes}
        for k, name in enumerate(SIGNALS):
            res[name] = sig[:, k] * (POSE_SCALE if name in ("yaw", "pitch", "roll") else 1.0)
        res["pose"] = np.stack([res["yaw"], res["pitch"], res["roll"]], axis=1)
        res["blink_closed"] = res["blink"] >= 0.5
        return res
