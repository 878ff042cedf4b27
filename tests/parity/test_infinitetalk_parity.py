"""avatarv's DiT with ``audio_adapter="infinitetalk"`` reproduces InfiniteTalk's ``WanModel`` (written out from its
published code in ``infinitetalk_reference.py``): one speaker, two speakers with L-RoPE, and the silent
unconditional pass — through ``infinitetalk_forward``, which takes InfiniteTalk's own arguments."""

from __future__ import annotations

import pytest
import torch

from avatarv.config import DiTConfig
from avatarv.models.dit import VideoRefDiT
from avatarv.models.dit.infinitetalk import infinitetalk_forward
from avatarv.models.dit.infinitetalk_audio import split_frame_windows
from avatarv.models.dit.wan_weights import map_wan_state_dict
from tests.parity.infinitetalk_reference import WanModel

DIMS = dict(dim=64, ffn_dim=96, freq_dim=32, text_dim=24, num_heads=4, num_layers=2, image_dim=20,
            audio_dim=12, audio_layers=3, intermediate_dim=16, output_dim=24, context_tokens=4)


def reference_model(seed: int = 0) -> WanModel:
    torch.manual_seed(seed)
    ref = WanModel(in_dim=36, out_dim=16, **DIMS).eval()
    with torch.no_grad():  # every parameter random, norms and the zero-initialised head included
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return ref


def our_model(ref: WanModel) -> VideoRefDiT:
    cfg = DiTConfig(
        dim=DIMS["dim"], num_heads=DIMS["num_heads"], num_layers=DIMS["num_layers"], ffn_dim=DIMS["ffn_dim"],
        latent_channels=16, cond_channels=20, text_dim=DIMS["text_dim"], freq_dim=DIMS["freq_dim"],
        image_dim=DIMS["image_dim"], audio_adapter="infinitetalk", audio_dim=DIMS["audio_dim"],
        audio_layers=DIMS["audio_layers"], audio_hidden_dim=DIMS["intermediate_dim"],
        audio_token_dim=DIMS["output_dim"], audio_context_tokens=DIMS["context_tokens"],
    )
    ours = VideoRefDiT(cfg).eval()
    mapped, report = map_wan_state_dict(ref.state_dict(), layout="original")
    assert not report.unexpected, report.unexpected
    missing, unexpected = ours.load_state_dict(mapped, strict=False)
    assert not unexpected
    assert set(missing) == {"ref_embedding"}, missing  # avatarv's own, zero: InfiniteTalk as loaded
    return ours


def inputs(speakers: int, seed: int = 1, frames: int = 3, h: int = 8, w: int = 12):
    g = torch.Generator().manual_seed(seed)
    video_frames = 1 + 4 * (frames - 1)
    x = [torch.randn(16, frames, h, w, generator=g)]
    y = [torch.randn(20, frames, h, w, generator=g)]
    context = [torch.randn(7, DIMS["text_dim"], generator=g)]
    clip = torch.randn(1, 257, DIMS["image_dim"], generator=g)
    audio = torch.randn(speakers, video_frames, 5, DIMS["audio_layers"], DIMS["audio_dim"], generator=g)
    masks = torch.zeros(3, h, w)
    masks[0, 1:6, 1:5] = 1  # speaker 1 on the left, speaker 2 on the right, the rest background
    masks[1, 2:7, 7:11] = 1
    masks[2] = 1 - masks[:2].amax(0)
    seq_len = frames * (h // 2) * (w // 2)
    return dict(x=x, t=torch.tensor([731.0]), context=context, seq_len=seq_len, clip_fea=clip, y=y, audio=audio,
                ref_target_masks=masks)


@pytest.mark.parametrize("speakers", [1, 2])
def test_forward_matches_infinitetalk(speakers):
    ref = reference_model()
    ours = our_model(ref)
    args = inputs(speakers)
    with torch.no_grad():
        want = ref(**{k: (list(v) if isinstance(v, list) else v) for k, v in args.items()})
        got = infinitetalk_forward(ours, **args)
    assert got.shape == want.shape == (1, 16, 3, 8, 12)
    err = (got - want).abs().max().item()
    assert err <= 1e-5 * max(1.0, want.abs().max().item()), err


def test_two_speakers_differ_from_one():
    """L-RoPE is live: the second speaker's audio and the masks change the output (guards a silent fallback)."""
    ours = our_model(reference_model())
    args = inputs(2)
    with torch.no_grad():
        two = infinitetalk_forward(ours, **args)
        one = infinitetalk_forward(ours, **{**args, "audio": args["audio"][:1]})
        swapped = args["ref_target_masks"][[1, 0, 2]]
        other = infinitetalk_forward(ours, **{**args, "ref_target_masks": swapped})
    assert (two - one).abs().max() > 1e-3
    assert (two - other).abs().max() > 1e-3


def test_silent_pass_is_one_speaker_of_zeros():
    """audio=None in the DiT = InfiniteTalk's unconditional audio (``zeros_like(audio)[-1:]``)."""
    ref = reference_model()
    ours = our_model(ref)
    args = inputs(2)
    zeros = torch.zeros_like(args["audio"])[-1:]
    with torch.no_grad():
        want = ref(**{**args, "audio": zeros})
        x = torch.stack(args["x"])
        got = ours(x, torch.tensor([0.731]), text=torch.cat([args["context"][0], torch.zeros(505, 24)])[None],
                   cond=torch.stack(args["y"]), image=args["clip_fea"]).video
    assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max().item())


def test_reference_map_rows_at_a_time():
    """Queries in row chunks (bounded memory) give InfiniteTalk's map: the whole [B, H/2, N, n0] at once."""
    from avatarv.models.dit.infinitetalk_audio import reference_attention_map
    from tests.parity.infinitetalk_reference import get_attn_map_with_target

    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(1, 4, 30, 8, generator=g), torch.randn(1, 4, 6, 8, generator=g)
    masks = (torch.rand(3, 6, generator=g) > 0.4).float()
    masks[:, 0] = 1
    want = get_attn_map_with_target(q.transpose(1, 2), k.transpose(1, 2), (5, 2, 3), masks)  # [3, N]
    for rows in (7, 30, 4096):
        got = reference_attention_map(q, k, masks[None], rows=rows)[0]
        assert torch.allclose(got, want, atol=1e-6), rows


def test_frame_windows_against_a_loop():
    """latent frame 0 reads its window; latent frame j ≥ 1 reads video frames 4j−3 … 4j: the first up to the
    centre, the middle two at the centre, the last from the centre (8 entries) — written out per frame."""
    v, win = 9, 5
    audio = torch.arange(v * win, dtype=torch.float32).reshape(1, v, win, 1, 1)
    first, later = split_frame_windows(audio, stride=4, window=win)
    assert torch.equal(first[0, 0], audio[0, 0])
    for j in range(1, 3):
        frames = [4 * j - 3 + i for i in range(4)]
        want = torch.cat([audio[0, frames[0], :3], audio[0, frames[1], 2:3], audio[0, frames[2], 2:3],
                          audio[0, frames[3], 2:]])
        assert torch.equal(later[0, j - 1], want)
    with pytest.raises(ValueError, match="1 \\+ 4"):
        split_frame_windows(audio[:, :8], 4, win)


def test_bad_audio_and_masks_are_refused():
    ours = our_model(reference_model())
    args = inputs(2)
    with pytest.raises(ValueError, match="speaker_masks"):
        infinitetalk_forward(ours, **{**args, "ref_target_masks": None})
    with pytest.raises(ValueError, match="audio must be"):
        infinitetalk_forward(ours, **{**args, "audio": args["audio"][:, :8]})
