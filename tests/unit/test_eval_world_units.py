"""Small parts of the world evaluation: the world SyncNet's interface, the ArcFace margin, save/load round trips,
the image-reference ablation's reference, the HTML report from case files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avatarv.eval.protocol import CaseResult, write_summary
from avatarv.eval.report import write_report
from avatarv.eval.train_syncnet import small_crops
from avatarv.eval.world_identity import ArcFaceHead, IdentityNet, load_identity_net, save_identity_net
from avatarv.eval.world_syncnet import (
    WorldSyncNet,
    is_world_syncnet_file,
    load_sync_model,
    save_world_syncnet,
)


def test_world_syncnet_sequence_equals_windows_and_pooled_inputs():
    torch.manual_seed(0)
    model = WorldSyncNet(width=8, embed_dim=16, audio_width=4).eval()
    frames = torch.rand(1, 3, 9, 224, 224) * 255  # 5 windows
    seq = model.embed_lip_sequence(frames, chunk=2)
    one_by_one = torch.cat([model.embed_lips(frames[:, :, i : i + 5]) for i in range(5)])
    assert seq.shape == (5, 16) and torch.allclose(seq, one_by_one, atol=1e-5)
    assert model.embed_audio(torch.randn(3, 1, 13, 20)).shape == (3, 16)
    # the trainer's stored crops are the network's own pooling of the evaluation's 224 crops
    crops = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    from avatarv.eval.syncnet import lip_input

    pooled = (model.small_lips(lip_input(crops))[0].permute(1, 2, 3, 0) + 0.5) * 255
    assert np.abs(pooled.numpy() - small_crops(crops)).max() <= 0.5 + 1e-3


def test_world_syncnet_round_trip(tmp_path):
    model = WorldSyncNet(width=8, embed_dim=16, audio_width=4).eval()
    path = save_world_syncnet(model, tmp_path / "w.safetensors", {"width": 8, "embed_dim": 16, "audio_width": 4})
    assert is_world_syncnet_file(path)
    loaded = load_sync_model(path)
    x = torch.randn(2, 1, 13, 20)
    assert torch.allclose(loaded.embed_audio(x), model.embed_audio(x), atol=2e-2)  # fp16 storage


def test_arcface_margin_penalises_the_true_class():
    torch.manual_seed(0)
    head = ArcFaceHead(8, 4, scale=10.0, margin=0.5)
    emb = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    plain = torch.nn.functional.cross_entropy(
        10.0 * emb @ torch.nn.functional.normalize(head.weight, dim=-1).T, labels)
    assert head(emb, labels) > plain  # the margin makes the true class harder
    head.margin = 0.0
    assert torch.allclose(head(emb, labels), plain, atol=1e-4)


def test_identity_net_round_trip(tmp_path):
    net = IdentityNet(width=8, embed_dim=16).eval()
    path = save_identity_net(net, tmp_path / "i.safetensors", {"width": 8, "embed_dim": 16})
    x = torch.rand(3, 3, 64, 64)
    out = load_identity_net(path)(x)
    assert out.shape == (3, 16) and torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-4)
    assert torch.allclose(out, net(x), atol=2e-2)


def test_image_reference_is_one_frame():
    from avatarv.eval.systems import image_reference
    from avatarv.media import Video

    v = Video(frames=np.zeros((10, 8, 8, 3), np.uint8), fps=25.0, audio=np.zeros(6400, np.float32))
    r = image_reference(v)
    assert r.frames.shape == (1, 8, 8, 3) and r.audio is None


def test_report_from_case_files(tmp_path):
    cases = []
    for i, scene in enumerate(["same", "cross", "generated", "cross"]):
        c = CaseResult(f"c{i}", meta={"scene": scene, "system": "x", "quality_backend": "classical-nr"})
        c.metrics.update(sync_c=5.0 + i, sync_d=7.0, face_sim=0.8, quality=3.0, behaviour=float("nan"))
        c.write(tmp_path / "cases")
        cases.append(c)
    write_summary(cases, tmp_path / "summary.json", extra={"system": "x", "benchmark": "b"})
    page = write_report(tmp_path).read_text()
    assert page.count("<tr>") >= 1 + 4 + 1 + 4  # table head + 4 rows (all, 3 scenes), cases head + 4
    assert "6.50" in page  # mean Sync-C over 4 cases: (5+6+7+8)/4
    assert "Quality (classical-nr) ↑" in page and "x · cross-scene" in page
    assert math.isnan(cases[0].metrics["behaviour"]) and "–" in page


@pytest.mark.parametrize("n", [3, 7, 70])
def test_bench_split_sizes(n):
    from avatarv.eval.world_bench import split

    s = split(n)
    assert len(s) == n and max(s.count(x) for x in set(s)) - min(s.count(x) for x in set(s)) <= 1


def test_syncnet_trainer_resumes_exactly(tmp_path):
    """Interrupted at step 2 and resumed to 4 gives the same weights as 4 steps straight (tiny model, 2 clips)."""
    from avatarv.eval.train_syncnet import SyncNetTrainConfig, train
    from avatarv.eval.world_syncnet import load_world_syncnet

    def args(out, stop=None):
        return SyncNetTrainConfig(out=str(out), weights=str(out / "w.safetensors"), clips=2, identities=2, scenes=2,
                                  test_clips=1, seconds=2.0, steps=4, batch_clips=2, run=4, width=4, embed_dim=8,
                                  audio_width=4, lr=1e-3, threads=1, seed=0, checkpoint_every=1e9, stop_after=stop)

    quiet = lambda s: None  # noqa: E731
    train(args(tmp_path / "a"), quiet)
    (tmp_path / "b").mkdir()
    for name in ("data.npz", "test.npz"):  # same data, no second render
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    assert train(args(tmp_path / "b", stop=2), quiet) == {"stopped_at": 2}
    logs: list[str] = []
    train(args(tmp_path / "b"), logs.append)
    assert "resumed at step 2" in logs  # it did continue from the checkpoint (a fresh start would match too)
    a = load_world_syncnet(tmp_path / "a" / "w.safetensors").state_dict()
    b = load_world_syncnet(tmp_path / "b" / "w.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_identity_trainer_resumes_exactly(tmp_path):
    from avatarv.eval.train_identity import IdentityTrainConfig, train
    from avatarv.eval.world_identity import load_identity_net

    def args(out, stop=None):
        return IdentityTrainConfig(out=str(out), weights=str(out / "w.safetensors"), identities=3, scenes=3,
                                   scenes_per_id=2, frames_per_scene=2, test_ids=2, test_frames=1, steps=4, batch=8,
                                   width=4, embed_dim=8, scale=30.0, margin=0.3, lr=1e-3, threads=1, seed=0,
                                   checkpoint_every=1e9, stop_after=stop)

    train(args(tmp_path / "a"), lambda s: None)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "data.npz").write_bytes((tmp_path / "a" / "data.npz").read_bytes())
    assert train(args(tmp_path / "b", stop=2), lambda s: None) == {"stopped_at": 2}
    logs: list[str] = []
    train(args(tmp_path / "b"), logs.append)
    assert "resumed at step 2" in logs
    a = load_identity_net(tmp_path / "a" / "w.safetensors").state_dict()
    b = load_identity_net(tmp_path / "b" / "w.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rank_scores_against_a_formula_written_out():
    from avatarv.eval.behaviour import behaviour_similarity, rank_scores

    refs = [{"blink_rate": b, "nod_amp": 1.0} for b in (0.0, 8.0, 16.0, 16.0, 40.0)]
    query = {"blink_rate": 15.0, "nod_amp": 1.0}
    sims = [behaviour_similarity(query, r) for r in refs]
    out = rank_scores(query, refs, truth=1)  # own reference at 8: below the two at 16, above 0 and 40
    assert out["hit"] == 0.0
    assert out["percentile"] == pytest.approx(2 / 4)
    assert out["margin"] == pytest.approx(sims[1] - (sims[0] + sims[2] + sims[3] + sims[4]) / 4)
    tied = rank_scores(query, refs, truth=2)  # above 0, 8 and 40; ties with the other 16: half a place
    assert tied["hit"] == 1.0 and tied["percentile"] == pytest.approx((3 + 0.5) / 4)
    assert rank_scores(query, refs[:1] + refs[2:3], truth=1) == {"hit": 1.0, "percentile": 1.0,
                                                                  "margin": pytest.approx(sims[2] - sims[0])}
    with pytest.raises(ValueError):
        rank_scores(query, refs[:1], truth=0)
