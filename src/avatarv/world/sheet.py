"""A contact sheet: identities (rows) × scenes (columns), one still each, to look at the world."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from avatarv.errors import ConfigError
from avatarv.world.geometry import Expression
from avatarv.world.identity import sample_identity
from avatarv.world.render import FrameState, Renderer
from avatarv.world.scene import sample_scene
from avatarv.world.seeds import rng


def contact_sheet(identities: int = 6, scenes: int = 6, cell: int = 128, seed: int = 0) -> np.ndarray:
    """[H, W, 3] uint8 RGB: a header row of scene ids, a left column of identity ids, stills in between."""
    if identities < 1 or scenes < 1:
        raise ConfigError("a contact sheet needs at least one identity and one scene")
    if not 64 <= cell <= 512 or cell % 2:
        raise ConfigError(f"cell size {cell} px: expected an even number between 64 and 512")
    margin = max(cell // 4, 24)
    sheet = np.full((margin + identities * cell, margin + scenes * cell, 3), 245, np.uint8)
    font, fs, th = cv2.FONT_HERSHEY_SIMPLEX, margin / 60, max(1, margin // 24)
    for j in range(scenes):
        cv2.putText(sheet, f"s{j}", (margin + j * cell + cell // 3, int(margin * 0.7)), font, fs, (40, 40, 40), th,
                    cv2.LINE_AA)
    for i in range(identities):
        ident = sample_identity(i, seed)
        cv2.putText(sheet, f"i{i}", (4, margin + i * cell + cell // 2), font, fs, (40, 40, 40), th, cv2.LINE_AA)
        for j in range(scenes):
            r = rng(seed, "sheet", i, j)
            state = FrameState(
                yaw=float(r.uniform(-6, 6)), pitch=float(r.uniform(-4, 4)), roll=float(r.uniform(-3, 3)),
                expression=Expression(mouth_open=float(r.uniform(0, 0.5)), smile=float(r.uniform(0, 0.8)),
                                      gaze_x=float(r.uniform(-0.3, 0.3))),
            )
            frame, _ = Renderer(ident, sample_scene(j, seed), cell).render(state)
            y, x = margin + i * cell, margin + j * cell
            sheet[y : y + cell, x : x + cell] = frame
    return sheet


def save_sheet(path: str | Path, identities: int = 6, scenes: int = 6, cell: int = 128, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = contact_sheet(identities, scenes, cell, seed)
    tmp = path.with_name(path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), img[..., ::-1]):
        raise ConfigError(f"could not write {path}")
    tmp.replace(path)
    return path
