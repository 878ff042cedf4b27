"""SyncNet network: shapes, the temporally fully-convolutional lip path, and the public checkpoint layout.

The reference below rebuilds the public ``SyncNetModel.S`` layer list (``nn.Sequential`` containers named
``netcnnaud``, ``netfcaud``, ``netcnnlip``, ``netfclip``) so a random state dict *of that layout* can be made,
saved, loaded through our key map, and the outputs compared with the reference's forward passes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avatarv.errors import CheckpointError, InputError
from avatarv.eval.syncnet import (
    SYNCNET_V2_KEY_MAP,
    SyncNet,
    convert_syncnet_v2_state_dict,
    load_syncnet,
    to_syncnet_v2_state_dict,
)


class _PublicLayout(nn.Module):
    """The public SyncNet layer list (joonson/syncnet_python SyncNetModel.S), for its state-dict layout."""

    def __init__(self):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(1, 1),
            nn.Conv2d(64, 192, 3, 1, 1), nn.BatchNorm2d(192), nn.ReLU(), nn.MaxPool2d(3, (1, 2)),
            nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512), nn.ReLU(),
        )  # fmt: skip
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024))
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, (5, 7, 7), (1, 2, 2)), nn.BatchNorm3d(96), nn.ReLU(), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512), nn.ReLU(),
        )  # fmt: skip

    def forward_aud(self, x):
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x):
        return self.netfclip(self.netcnnlip(x).flatten(1))


def _randomised_public_state(seed: int = 0, with_batch_counts: bool = False) -> tuple[_PublicLayout, dict]:
    """A public-layout model with random weights *and* random batch-norm statistics (so a key swap shows)."""
    torch.manual_seed(seed)
    ref = _PublicLayout()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ref.eval()
    state = {k: v.clone() for k, v in ref.state_dict().items() if with_batch_counts or not k.endswith("num_batches_tracked")}
    return ref, state


def test_key_map_covers_every_tensor_both_ways():
    ours = SyncNet().state_dict()
    theirs = _PublicLayout().state_dict()
    assert set(SYNCNET_V2_KEY_MAP) == set(ours)
    assert set(SYNCNET_V2_KEY_MAP.values()) == set(theirs)
    for our_key, their_key in SYNCNET_V2_KEY_MAP.items():
        assert ours[our_key].shape == theirs[their_key].shape, (our_key, their_key)


def test_public_checkpoint_loads_and_gives_the_same_embeddings(tmp_path):
    ref, state = _randomised_public_state()
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)  # the public file is a plain state dict (loadParameters iterates .items())
    model = load_syncnet(path)
    assert not model.training
    torch.manual_seed(1)
    mfcc = torch.randn(3, 1, 13, 20) * 10
    lips = torch.rand(2, 3, 5, 224, 224) * 255
    with torch.no_grad():
        torch.testing.assert_close(model.embed_audio(mfcc), ref.forward_aud(mfcc), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model.embed_lips(lips), ref.forward_lip(lips), rtol=1e-4, atol=1e-3)
    # export back to the public layout: identical tensors
    back = to_syncnet_v2_state_dict(model)
    for k, v in state.items():
        torch.testing.assert_close(back[k], v)


def test_lip_sequence_equals_window_by_window():
    torch.manual_seed(2)
    model = SyncNet().eval()
    frames = torch.rand(1, 3, 9, 224, 224) * 255  # 5 windows
    with torch.no_grad():
        seq = model.embed_lip_sequence(frames, chunk=2)
        per_window = torch.cat([model.embed_lips(frames[:, :, i : i + 5]) for i in range(5)])
    assert seq.shape == (5, 1024)
    torch.testing.assert_close(seq, per_window, rtol=1e-4, atol=1e-4)


def test_shapes():
    model = SyncNet().eval()
    with torch.no_grad():
        assert model.embed_audio(torch.zeros(4, 1, 13, 20)).shape == (4, 1024)
        assert model.audio_encoder(torch.zeros(1, 1, 13, 20)).shape == (1, 512)


def test_checkpoint_errors_name_the_problem(tmp_path):
    _, state = _randomised_public_state(with_batch_counts=True)
    model = SyncNet()
    assert convert_syncnet_v2_state_dict(state, model)  # with num_batches_tracked: fine too
    bad_shape = dict(state)
    bad_shape["netfcaud.3.weight"] = torch.zeros(512, 512)
    with pytest.raises(CheckpointError, match="netfcaud.3.weight"):
        convert_syncnet_v2_state_dict(bad_shape, model)
    extra = dict(state)
    extra["netcnnaud.99.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected"):
        convert_syncnet_v2_state_dict(extra, model)
    missing = {k: v for k, v in state.items() if not k.startswith("netfclip")}
    with pytest.raises(CheckpointError, match="lacks"):
        convert_syncnet_v2_state_dict(missing, model)
    with pytest.raises(InputError, match="not found"):
        load_syncnet(tmp_path / "nope.model")


def test_our_own_layout_round_trips(tmp_path):
    torch.manual_seed(3)
    model = SyncNet()
    path = tmp_path / "ours.pt"
    torch.save(model.state_dict(), path)
    loaded = load_syncnet(path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
