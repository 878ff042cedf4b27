"""Human-aware auxiliary losses in learned feature spaces (seed, Stage 3).

Pixel/latent MSE treats a lip corner like a wall pixel. These losses compare the model's clean estimate
x̂0 = x_t − t·v̂ with the target in the feature space of a network that knows faces: an identity embedder,
a lip-sync network, motion-signal predictors, perceptual features. Each is decoder → extractor → distance;
the decoder (the VAE decoder) is differentiable, so gradients reach the DiT through it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


class FeatureMatchingLoss:
    """1 − cos(features(decode(x̂0)), features(decode(x0))), averaged over the batch.

    ``decode``: latents ``[B, z, F, h, w]`` → frames ``[B, 3, T, H, W]`` in [−1, 1] (differentiable);
    ``extract``: frames → features ``[B, ...]``. The target branch runs without gradients.
    """

    def __init__(self, decode: Callable, extract: Callable, max_frames: int | None = 2):
        self.decode = decode
        self.extract = extract
        self.max_frames = max_frames  # decoding every frame is costly: a few latent frames carry the signal

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, batch) -> torch.Tensor:
        if self.max_frames is not None:
            x0_hat, x0 = x0_hat[:, :, -self.max_frames :], x0[:, :, -self.max_frames :]
        pred = self.extract(self.decode(x0_hat)).flatten(1)
        with torch.no_grad():
            target = self.extract(self.decode(x0)).flatten(1)
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()


def crop_windows(frames: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, w: torch.Tensor, h: torch.Tensor,
                 size: int) -> torch.Tensor:
    """Differentiable crops of the pixel windows ``[x0, x0 + w) × [y0, y0 + h)`` (first pixel index, lengths; each
    ``[N]``) of frames ``[N, 3, H, W]``, resized to ``size``² as ``cv2.resize`` maps them (output pixel o samples
    index x0 + (o + ½)·w/size − ½), bilinearly, so gradients reach the frames."""
    n, _, fh, fw = frames.shape
    theta = torch.zeros(n, 2, 3, device=frames.device)
    # affine_grid (align_corners=False): output o ↦ normalised (2o + 1)/size − 1 ↦ theta ↦ input index p at
    # normalised (2p + 1)/W − 1; solving for p = x0 + (o + ½)·w/size − ½ gives the entries below
    theta[:, 0, 0] = w / fw
    theta[:, 1, 1] = h / fh
    theta[:, 0, 2] = (2 * x0 + w) / fw - 1
    theta[:, 1, 2] = (2 * y0 + h) / fh - 1
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return F.grid_sample(frames.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop_faces(frames: torch.Tensor, boxes: torch.Tensor, size: int = 64, scale: float = 1.3) -> torch.Tensor:
    """Differentiable square face crops. frames ``[N, 3, H, W]`` in [−1, 1], boxes ``[N, 4]`` (x0, y0, x1, y1 px)
    → ``[N, 3, size, size]`` in [0, 1]: side ``scale · max(w, h)`` around the box centre (as the identity
    embedder's ``face_crop``), sampled bilinearly so gradients reach the frames."""
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    side = torch.maximum(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # output pixel o samples index side·(o + ½)/size − side/2 + cx, as face_crop's warp does: crop_windows' window
    # starting at cx − side/2 + ½
    crops = crop_windows(frames, cx - side / 2 + 0.5, cy - side / 2 + 0.5, side, side, size)
    return (crops + 1) / 2


class IdentityLoss:
    """1 − cos between identity embeddings of the decoded estimate and the decoded target, on face crops
    (the batch's ``face_box`` of each latent frame) of the last ``max_frames`` latent frames."""

    def __init__(self, decode: Callable, embed: torch.nn.Module, max_frames: int = 2):
        self.decode, self.embed, self.max_frames = decode, embed, max_frames

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, batch) -> torch.Tensor:
        k = self.max_frames
        box = batch.face_box[:, -1]  # [B, 4] the last latent frame's box

        def faces(latents):
            video = self.decode(latents[:, :, -k:])  # [B, 3, T, H, W]
            b, _, t, h, w = video.shape
            frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)
            return crop_faces(frames, box.repeat_interleave(t, dim=0))

        pred = self.embed(faces(x0_hat))
        with torch.no_grad():
            target = self.embed(faces(x0))
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()


def syncnet_crops(frames: torch.Tensor, boxes: torch.Tensor, size: int = 56) -> torch.Tensor:
    """Differentiable SyncNet crops. frames ``[N, 3, H, W]`` RGB in [−1, 1], face boxes ``[N, 4]`` → the lip
    tower's input ``[N, 3, size, size]`` BGR in [−0.5, 0.5]: the window ``face_tracks.crop_face`` cuts
    (syncnet_python's ``crop_video``, crop scale 0.4: half size s = max(w, h)/2, rows ⌊cy − s⌋ … ⌊cy + 1.8 s⌋,
    columns ⌊cx − 1.4 s⌋ … ⌊cx + 1.4 s⌋), sampled at ``size`` (the world SyncNet pools its 224² crops to 56²).
    The window's integer edges come from the labels, not from the frames, so the floors cost no gradient."""
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    s = torch.maximum(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = torch.floor(cx - 1.4 * s), torch.floor(cy - s)
    width, height = torch.floor(cx + 1.4 * s) - left, torch.floor(cy + 1.8 * s) - top
    rgb = (crop_windows(frames, left, top, width, height, size) + 1) * 127.5  # [N, 3, size, size] 0..255
    return rgb.flip(1) / 255.0 - 0.5


class LipSyncLoss:
    """1 − cos between the world SyncNet's lip-window embeddings of the decoded estimate and of the decoded
    target (the seed's sync loss: the target's mouth is in sync with the speech, so matching its lip embedding
    window by window asks for the same mouth motion, in the space the Sync-C metric reads). The last
    ``latent_frames`` latent frames decode to 1 + 4·(latent_frames − 1) frames; every 5-frame window counts."""

    def __init__(self, decode: Callable, syncnet: torch.nn.Module, latent_frames: int = 2):
        if latent_frames < 2:
            raise ValueError("the lip tower reads 5-frame windows: need ≥ 2 latent frames (5 frames)")
        self.decode, self.net, self.latent_frames = decode, syncnet, latent_frames

    def lips(self, latents: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """latents ``[B, z, F, h, w]``, box ``[B, 4]`` → window embeddings ``[B·(T − 4), D]``."""
        video = self.decode(latents[:, :, -self.latent_frames :])  # [B, 3, T, H, W]
        b, _, t, h, w = video.shape
        frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)
        crops = syncnet_crops(frames, box.repeat_interleave(t, dim=0))  # [B·T, 3, 56, 56]
        return self.net.lip_embed_small(crops.reshape(b, t, *crops.shape[1:]).transpose(1, 2))

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, batch) -> torch.Tensor:
        box = batch.face_box[:, -1]  # [B, 4] the last latent frame's box
        pred = self.lips(x0_hat, box)
        with torch.no_grad():
            target = self.lips(x0, box)
        return (1 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()


def make_aux_losses(names, vae_dir) -> dict:
    """The auxiliary losses by name, built on a frozen VAE decoder (``vae_dir``) and frozen feature nets.

    ``identity``: the world identity embedder (``src/avatarv/assets/eval/world_identity.safetensors``);
    ``lip_sync``: the world SyncNet's lip tower (``src/avatarv/assets/eval/world_syncnet.safetensors``)."""
    from avatarv.errors import ConfigError
    from avatarv.models.vae import VideoVAE

    unknown = set(names) - set(AUX_LOSSES)
    if unknown:
        raise ConfigError(f"unknown auxiliary losses {sorted(unknown)} (known: {', '.join(AUX_LOSSES)})")
    vae = VideoVAE.from_pretrained(vae_dir)
    for p in vae.parameters():
        p.requires_grad_(False)

    def decode(latents: torch.Tensor) -> torch.Tensor:  # normalised latents → frames in [−1, 1]
        return vae.model.decode(latents * vae.std + vae.mean).sample

    out = {}
    if "identity" in names:
        from avatarv.eval.world_identity import load_identity_net

        net = load_identity_net().eval()
        for p in net.parameters():
            p.requires_grad_(False)
        out["identity"] = IdentityLoss(decode, net)
    if "lip_sync" in names:
        from avatarv.eval.world_syncnet import load_world_syncnet

        net = load_world_syncnet().eval()
        for p in net.parameters():
            p.requires_grad_(False)
        out["lip_sync"] = LipSyncLoss(decode, net)
    return out


AUX_LOSSES = ("identity", "lip_sync")
