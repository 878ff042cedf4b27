"""SyncNet in the public architecture (Chung & Zisserman 2016; joonson/syncnet_python, ``SyncNetModel.py``).

Two towers map 0.2 s of mouth video and the matching 0.2 s of MFCCs to 1024-d embeddings whose L2 distance is
small when they are in sync:

- audio: MFCC window ``[B, 1, 13, 20]`` (13 coefficients x 20 frames at 100 Hz) -> 2-D CNN -> ``[B, 512]`` -> MLP
  -> ``[B, 1024]``;
- lips: 5 consecutive 224 x 224 **colour** face crops ``[B, 3, 5, 224, 224]`` -> 3-D CNN (only the first layer
  mixes time) -> ``[B, 512]`` -> MLP -> ``[B, 1024]``. The original feeds BGR pixels as float 0..255 with no
  normalisation (``SyncNetInstance.evaluate`` reads frames with ``cv2.imread`` and casts them to float), so does
  :func:`lip_input`.

Our module names say what the layers are; ``SYNCNET_V2_KEY_MAP`` maps them one to one onto the public
checkpoint layout (``netcnnaud.N``, ``netfcaud.N``, ``netcnnlip.N``, ``netfclip.N``), so ``syncnet_v2.model``
(a plain state dict, loaded by ``SyncNetInstance.loadParameters``) loads from a local path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avatarv.errors import CheckpointError, InputError

EMBED_DIM = 1024  # num_layers_in_fc_layers in the original
CROP_SIZE = 224
WINDOW_FRAMES = 5  # video frames per window (0.2 s at 25 fps)
MFCC_PER_WINDOW = 20  # MFCC frames per window (0.2 s at 100 Hz)
N_MFCC = 13


class ConvNormReLU(nn.Module):
    """conv -> batch norm -> ReLU; 2-D or 3-D."""

    def __init__(self, dims: int, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.conv = conv(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding)
        self.norm = norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class EmbeddingHead(nn.Module):
    """512 -> 512 (BN, ReLU) -> 1024, the original ``netfcaud`` / ``netfclip``."""

    def __init__(self, dim_in: int = 512, dim_out: int = EMBED_DIM):
        super().__init__()
        self.hidden = nn.Linear(dim_in, 512)
        self.norm = nn.BatchNorm1d(512)
        self.out = nn.Linear(512, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.norm(self.hidden(x))))


class AudioEncoder(nn.Module):
    """MFCC window -> 512 features. Shapes for the 13 x 20 input in comments."""

    def __init__(self):
        super().__init__()
        self.block1 = ConvNormReLU(2, 1, 64, 3, padding=1)  # [B,64,13,20] (the original's MaxPool 1x1 is a no-op)
        self.block2 = ConvNormReLU(2, 64, 192, 3, padding=1)  # [B,192,13,20] -> pool (3,3)/(1,2) -> [B,192,11,9]
        self.block3 = ConvNormReLU(2, 192, 384, 3, padding=1)  # [B,384,11,9]
        self.block4 = ConvNormReLU(2, 384, 256, 3, padding=1)  # [B,256,11,9]
        self.block5 = ConvNormReLU(2, 256, 256, 3, padding=1)  # [B,256,11,9] -> pool 3/2 -> [B,256,5,4]
        self.block6 = ConvNormReLU(2, 256, 512, (5, 4))  # [B,512,1,1]

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:  # [B,1,13,20] -> [B,512]
        x = self.block1(mfcc)
        x = F.max_pool2d(self.block2(x), kernel_size=(3, 3), stride=(1, 2))
        x = self.block4(self.block3(x))
        x = F.max_pool2d(self.block5(x), kernel_size=(3, 3), stride=(2, 2))
        return self.block6(x).flatten(1)


class LipEncoder(nn.Module):
    """Five face crops -> 512 features. Only block1 has a temporal extent (5); every later layer has temporal
    kernel 1 and no temporal padding, so the encoder is fully convolutional in time: run on ``T`` frames it
    returns the ``T - 4`` window features at once, identical to running each window alone."""

    def __init__(self):
        super().__init__()
        self.block1 = ConvNormReLU(3, 3, 96, (5, 7, 7), stride=(1, 2, 2))  # [B,96,1,109,109] -> pool -> 54
        self.block2 = ConvNormReLU(3, 96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1))  # 26 -> pool -> 13
        self.block3 = ConvNormReLU(3, 256, 256, (1, 3, 3), padding=(0, 1, 1))  # 13
        self.block4 = ConvNormReLU(3, 256, 256, (1, 3, 3), padding=(0, 1, 1))  # 13
        self.block5 = ConvNormReLU(3, 256, 256, (1, 3, 3), padding=(0, 1, 1))  # 13 -> pool -> 6
        self.block6 = ConvNormReLU(3, 256, 512, (1, 6, 6))  # [B,512,1,1,1]

    def features(self, frames: torch.Tensor) -> torch.Tensor:  # [B,3,T,224,224] -> [B,512,T-4,1,1]
        x = F.max_pool3d(self.block1(frames), kernel_size=(1, 3, 3), stride=(1, 2, 2))
        x = F.max_pool3d(self.block2(x), kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        x = self.block4(self.block3(x))
        x = F.max_pool3d(self.block5(x), kernel_size=(1, 3, 3), stride=(1, 2, 2))
        return self.block6(x)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # [B,3,5,224,224] -> [B,512]
        return self.features(frames).flatten(1)


class SyncNet(nn.Module):
    """The two towers and their embedding heads (``S`` in the original)."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.audio_encoder = AudioEncoder()
        self.audio_head = EmbeddingHead(512, embed_dim)
        self.lip_encoder = LipEncoder()
        self.lip_head = EmbeddingHead(512, embed_dim)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:  # [B,1,13,20] -> [B,D]  (forward_aud)
        return self.audio_head(self.audio_encoder(mfcc))

    def embed_lips(self, frames: torch.Tensor) -> torch.Tensor:  # [B,3,5,224,224] -> [B,D]  (forward_lip)
        return self.lip_head(self.lip_encoder(frames))

    def embed_lip_sequence(self, frames: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """All 5-frame windows of one crop sequence: ``[1,3,T,224,224]`` -> ``[T-4, D]``.

        Window ``i`` covers frames ``i..i+4`` (as ``imtv[:,:,i:i+5]`` in the original). Runs the temporally
        fully convolutional encoder on ``chunk`` windows at a time (``chunk + 4`` frames) to bound memory.
        """
        n_windows = frames.shape[2] - WINDOW_FRAMES + 1
        out = []
        for start in range(0, max(n_windows, 0), chunk):
            stop = min(n_windows, start + chunk)
            feats = self.lip_encoder.features(frames[:, :, start : stop + WINDOW_FRAMES - 1])  # [1,512,n,1,1]
            feats = feats[0, :, :, 0, 0].transpose(0, 1)  # [n,512]
            out.append(self.lip_head(feats))
        if not out:
            return frames.new_zeros((0, self.lip_head.out.out_features))
        return torch.cat(out, 0)


def lip_input(crops_rgb: np.ndarray) -> torch.Tensor:
    """Face crops ``[T,224,224,3]`` uint8 RGB -> ``[1,3,T,224,224]`` float BGR 0..255, the original's input
    (``cv2.imread`` gives BGR; ``numpy.transpose(im,(0,3,4,1,2))``; no mean/std normalisation)."""
    if crops_rgb.ndim != 4 or crops_rgb.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        raise ValueError(f"expected face crops [T,{CROP_SIZE},{CROP_SIZE},3], got {tuple(crops_rgb.shape)}")
    bgr = np.ascontiguousarray(crops_rgb[..., ::-1])
    return torch.from_numpy(bgr).float().permute(3, 0, 1, 2).unsqueeze(0)


# --- the public checkpoint layout -------------------------------------------------------------------------

# (our block, their conv index, their batch-norm index) in the original nn.Sequential containers
_AUDIO_BLOCKS = [(1, 0, 1), (2, 4, 5), (3, 8, 9), (4, 11, 12), (5, 14, 15), (6, 18, 19)]
_LIP_BLOCKS = [(1, 0, 1), (2, 4, 5), (3, 8, 9), (4, 11, 12), (5, 14, 15), (6, 18, 19)]
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _build_key_map() -> dict[str, str]:
    """ours -> public ``syncnet_v2.model`` key, every parameter and buffer."""
    table: dict[str, str] = {}
    for ours, theirs, blocks in (("audio_encoder", "netcnnaud", _AUDIO_BLOCKS), ("lip_encoder", "netcnnlip", _LIP_BLOCKS)):
        for block, conv_i, bn_i in blocks:
            for p in ("weight", "bias"):
                table[f"{ours}.block{block}.conv.{p}"] = f"{theirs}.{conv_i}.{p}"
            for p in _BN_PARAMS:
                table[f"{ours}.block{block}.norm.{p}"] = f"{theirs}.{bn_i}.{p}"
    for ours, theirs in (("audio_head", "netfcaud"), ("lip_head", "netfclip")):
        for p in ("weight", "bias"):
            table[f"{ours}.hidden.{p}"] = f"{theirs}.0.{p}"
            table[f"{ours}.out.{p}"] = f"{theirs}.3.{p}"
        for p in _BN_PARAMS:
            table[f"{ours}.norm.{p}"] = f"{theirs}.1.{p}"
    return table


SYNCNET_V2_KEY_MAP: dict[str, str] = _build_key_map()


def convert_syncnet_v2_state_dict(theirs: dict[str, torch.Tensor], model: SyncNet) -> dict[str, torch.Tensor]:
    """Public layout -> ours, checked: every key known, every shape equal, nothing missing.

    ``num_batches_tracked`` is optional (checkpoints saved by older torch lack it; it does not affect eval).
    Raises :class:`CheckpointError` naming the offending keys.
    """
    ours_state = model.state_dict()
    inverse = {v: k for k, v in SYNCNET_V2_KEY_MAP.items()}
    unexpected = sorted(k for k in theirs if k not in inverse)
    if unexpected:
        raise CheckpointError(f"not a syncnet_v2 state dict: unexpected keys {unexpected[:5]}")
    converted: dict[str, torch.Tensor] = {}
    for their_key, tensor in theirs.items():
        our_key = inverse[their_key]
        want = tuple(ours_state[our_key].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(f"{their_key}: shape {tuple(tensor.shape)}, expected {want} (for {our_key})")
        converted[our_key] = tensor
    missing = sorted(k for k in ours_state if k not in converted and not k.endswith("num_batches_tracked"))
    if missing:
        raise CheckpointError(f"syncnet_v2 state dict lacks {[SYNCNET_V2_KEY_MAP[k] for k in missing[:5]]}")
    return converted


def to_syncnet_v2_state_dict(model: SyncNet) -> dict[str, torch.Tensor]:
    """Ours -> public layout (for exporting a world-trained SyncNet to tools that expect the original)."""
    return {SYNCNET_V2_KEY_MAP[k]: v.detach().clone() for k, v in model.state_dict().items()}


def load_syncnet(path: str | Path | None = None, device: str | torch.device = "cpu") -> SyncNet:
    """A SyncNet in eval mode. ``path``: a local ``syncnet_v2.model`` (public layout) or a state dict saved from
    this module (our layout; ``.pt``/``.pth``/``.model``, or ``.safetensors``). ``None`` gives random weights:
    their scores mean nothing and are for tests only. Nothing is downloaded."""
    model = SyncNet()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError("SyncNet weights not found (expected a local syncnet_v2.model)", path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
        if any(k.startswith("netcnn") or k.startswith("netfc") for k in state):
            state = convert_syncnet_v2_state_dict(state, model)
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise CheckpointError(
                f"{path}: does not match SyncNet (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
            )
    return model.to(device).eval()
