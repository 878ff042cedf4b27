"""The analyzer-space loss (training/analyzer_loss.py): crops equal the analyzer's own, the formula, frozen net,
gradients reach the pixels, and the VAE trainer adds it with its weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avatarv.analyzer.crops import crop, crop_square
from avatarv.analyzer.model import FaceNet
from avatarv.analyzer.predictor import WorldAnalyzer
from avatarv.training.analyzer_loss import MOUTH_SIGNAL, AnalyzerLoss, crop_faces, face_squares
from avatarv.training.vae import VAETrainConfig, VAETrainer, to_input


def _frames(t: int = 3, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8))  # blocky: bilinear and area resampling agree inside blocks
    return np.stack([np.roll(big, k, axis=1) for k in range(t)])


def _random_analyzer(seed: int = 0) -> WorldAnalyzer:
    torch.manual_seed(seed)
    from avatarv.analyzer.model import BoxNet

    return WorldAnalyzer(BoxNet(8), FaceNet(8))


def test_face_squares_are_the_analyzers_crop_squares():
    rng = np.random.default_rng(1)
    lms = rng.uniform(10, 50, (4, 68, 2)).astype(np.float32)
    want = np.stack([crop_square(np.r_[l.min(0), l.max(0)]) for l in lms])
    np.testing.assert_allclose(face_squares(lms), want, rtol=1e-6)


def test_crops_equal_the_analyzers_own_crops():
    frames = _frames()
    squares = np.array([[30.0, 28.0, 40.0], [33.5, 31.0, 44.0], [29.0, 30.0, 36.0]], np.float32)  # side < 96: upsampling
    ours = crop_faces(to_input(frames)[None], torch.from_numpy(squares)[None]).permute(0, 2, 3, 1).numpy()
    theirs = np.stack([crop(f, s) for f, s in zip(frames, squares, strict=True)]).astype(np.float32) / 255.0
    assert ours.shape == theirs.shape == (3, 96, 96, 3)
    assert np.abs(ours - theirs).mean() < 0.01  # both bilinear; OpenCV rounds to uint8 and to 1/32 px weights


def test_loss_is_the_written_formula_zero_on_equal_inputs_and_frozen():
    analyzer = _random_analyzer()
    loss_fn = AnalyzerLoss(analyzer, layers=(1, 3), mouth_weight=0.7).train()  # .train() keeps BatchNorm in eval
    assert not any(p.requires_grad for p in loss_fn.parameters())
    assert not loss_fn.features.training
    x = to_input(_frames())[None]
    squares = torch.tensor([[[32.0, 30.0, 40.0]] * 3])
    zero, _ = loss_fn(x, x, squares)
    assert zero.item() == 0.0
    y = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(-1, 1)
    got, logs = loss_fn(y, x, squares)
    # written out: layer features normalised over channels, squared difference summed over channels, averaged
    net = analyzer.face_net.eval()
    with torch.no_grad():
        a, b = crop_faces(y, squares) - 0.5, crop_faces(x, squares) - 0.5
        feats = []
        for i, block in enumerate(net.features):
            a, b = block(a), block(b)
            if i in (1, 3):
                feats.append(((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).sum(1).mean())
        oa, ob = net.head(a), net.head(b)
    lips = (oa[:, :136].reshape(-1, 68, 2)[:, 48:68] - ob[:, :136].reshape(-1, 68, 2)[:, 48:68]).abs().mean()
    mouth = lips + (oa[:, MOUTH_SIGNAL] - ob[:, MOUTH_SIGNAL]).abs().mean()
    want = sum(feats) / 2 + 0.7 * mouth
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert logs["analyzer_mouth"] == pytest.approx(mouth.item(), rel=1e-5)


def test_gradient_reaches_the_reconstruction_inside_the_face_only():
    loss_fn = AnalyzerLoss(_random_analyzer(), mouth_weight=1.0)
    x = to_input(_frames())[None]
    y = (x * 0.9).requires_grad_(True)
    squares = torch.tensor([[[32.0, 30.0, 24.0]] * 3])  # a 24-px square around (32, 30)
    loss, _ = loss_fn(y, x, squares)
    loss.backward()
    g = y.grad.abs().sum(dim=(0, 1, 2))  # [H, W]
    assert g[18:42, 20:44].sum() > 0
    assert g[:, :15].sum() == 0 and g[:, 50:].sum() == 0 and g[:14].sum() == 0 and g[46:].sum() == 0


class SquaredClip:
    """A fixed 5-frame clip with head/mouth boxes and face squares, as WorldClipSource returns them."""

    def __init__(self):
        self.frames = _frames(5, 32)

    def sample(self, g):
        return self.frames

    def sample_with_boxes(self, g):
        t = len(self.frames)
        return self.frames, {"head": np.tile(np.array([[8, 8, 24, 24]], np.float32), (t, 1)),
                             "mouth": np.tile(np.array([[12, 16, 20, 20]], np.float32), (t, 1)),
                             "square": np.tile(np.array([[16, 16, 20]], np.float32), (t, 1))}


def test_vae_trainer_adds_the_analyzer_loss_with_its_weight(tmp_path, monkeypatch):
    import avatarv.training.analyzer_loss as mod

    monkeypatch.setattr(mod.WorldAnalyzer, "load", classmethod(lambda cls, path=None: _random_analyzer(4)))
    cfg = VAETrainConfig(preset="tiny", steps=1, batch_size=1, out_dir=str(tmp_path), precision="fp32",
                         analyzer_weight=0.5, analyzer_mouth_weight=2.0)
    trainer = VAETrainer(cfg, source=SquaredClip())
    batch, weights, squares = trainer.next_batch()
    assert weights is None and squares.shape == (1, 5, 3)
    with torch.no_grad():
        loss, logs = trainer.loss(batch, weights, squares)
    want = logs["l1"] + 0.5 * (logs["analyzer_feat"] + 2.0 * logs["analyzer_mouth"]) + cfg.kl_weight * logs["kl"]
    assert loss.item() == pytest.approx(want, rel=1e-5)
    assert logs["analyzer_feat"] > 0
    rec = trainer.train_step()
    assert {"analyzer_feat", "analyzer_mouth"} <= rec.keys()
