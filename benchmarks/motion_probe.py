"""What does a trained DiT's motion stream know? Teacher-forced denoising of held-out world clips.

    python benchmarks/motion_probe.py --checkpoint checkpoints/world-small [--clips 12] [--t 1.0,0.8,0.5]

For each held-out identity (10 000 …) a target clip (scene 0) and a reference (scene 1, the checkpoint's
reference stride) are encoded exactly as the training shards are. At flow time t the ground-truth video
latents and motion are noised (fixed seed), the model predicts the velocity with the first latent frame
known (the first chunk's scene image), and its clean estimate m̂0 = m_t − t·v is read back to raw features.
Per signal we report Pearson r between m̂0 and the ground truth over all generated frames of all clips,
under five conditions: everything given, audio dropped (zero tokens, as training's condition dropout feeds
it), reference dropped (every reference key masked, as training drops it), both, and another identity's
reference (the next clip's: full − other_ref is what the model takes from *this* person's reference,
their habits, rather than from any reference). At t = 1 the input holds no
trace of the target, so r there is what the model learned to infer from its conditions alone: mouth from
audio, blink / smile / pose habits from the reference. The "input" row is r of the noisy input m_t itself
(the part of r the model gets for free). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from avatarv.eval.stats import pearson

SIGNALS = ("mouth_open", "blink", "smile", "yaw", "pitch", "brow_raise")
CONDITIONS = ("full", "no_audio", "no_ref", "none", "other_ref")


def make_items(pipe, clips: int, seed: int) -> list[dict[str, torch.Tensor]]:
    from avatarv.training.world_shards import encode_clip, encode_reference
    from avatarv.world import make_clip

    cfg = pipe.cfg
    latents, ref_latents = cfg.chunk_latent_frames, cfg.max_ref_latent_frames
    stride = cfg.ref_frame_stride
    seconds = ((latents - 1) * 4 + 1) / cfg.fps
    ref_seconds = ((ref_latents - 1) * 4 + 1) * stride / cfg.fps
    items = []
    for i in range(clips):
        ident = 10_000 + i
        target = make_clip(ident, 0, seconds=seconds, size=cfg.resolution, seed=seed, clip_index=0)
        item = encode_clip(target, pipe.vae, cfg, latents, pipe.audio_features)
        ref_clip = make_clip(ident, 1, seconds=ref_seconds, size=cfg.resolution, seed=seed, clip_index=3)
        ref = encode_reference(ref_clip, pipe.vae, cfg, ref_latents, stride)
        item["ref_latents"], item["ref_motion"] = ref["latents"], ref["motion"]
        item["ref_frames"] = ref_clip.frames[::stride][: (ref_latents - 1) * 4 + 1]  # what encode_reference read
        items.append(item)
    return items


@torch.no_grad()
def probe(pipe, items, ts: list[float], seed: int) -> dict:
    from avatarv.diffusion import add_noise
    from avatarv.models.dit import RefInputs
    from avatarv.models.dit.conditions import Conditions, i2v_condition, leading_mask
    from avatarv.models.dit.motion_codec import MotionCodec

    dit = pipe.dit
    mcfg = dit.cfg
    codec = MotionCodec.from_config(mcfg)
    g = torch.Generator().manual_seed(seed)
    noises = [(torch.randn(it["latents"].shape, generator=g), torch.randn(it["motion"].shape, generator=g))
              for it in items]
    text = torch.zeros(1, pipe.text_encoder.max_length, mcfg.text_dim) if pipe.text_encoder else None  # training's null
    out: dict = {}
    for t in ts:
        preds = {c: [] for c in CONDITIONS}
        truth, noisy = [], []
        for k, (it, (nv, nm)) in enumerate(zip(items, noises, strict=True)):
            other = items[(k + 1) % len(items)]
            x0 = it["latents"][None].float()  # [1, z, F, h, w]
            m0 = codec.normalize(it["motion"][None].float())  # [1, F, dim]
            tt = torch.tensor([t])
            x_t = add_noise(x0, nv[None], tt)
            m_t = add_noise(m0, nm[None], tt)
            f = x0.shape[2]
            cond = i2v_condition(x0[:, :, :1], leading_mask(1, f))
            truth.append(it["motion"][1:].float())
            noisy.append(codec.denormalize(m_t[0, 1:]))
            for c in CONDITIONS:
                keep_ref = c in ("full", "no_audio", "other_ref")
                keep_audio = c in ("full", "no_ref", "other_ref") and keep_ref  # nested: no ref → no audio either
                # dropped as training drops them (Conditions.kept, per sample): zero audio tokens, every
                # reference key masked
                src = other if c == "other_ref" else it
                ref = RefInputs(src["ref_latents"][None].float(), codec.normalize(src["ref_motion"][None].float()))
                conditions = Conditions(cond=cond, audio=it["audio"][None].float(), text=text, ref=[ref])
                kept = conditions.kept({"ref": torch.tensor([keep_ref]), "audio": torch.tensor([keep_audio])})
                pred = dit(x_t, tt, motion=m_t, **kept.dit_kwargs())
                m_hat = m_t - t * pred.motion.float()
                preds[c].append(codec.denormalize(m_hat[0, 1:]))
        gt = torch.cat(truth)
        rows = {"input": torch.cat(noisy), **{c: torch.cat(v) for c, v in preds.items()}}
        table = {row: score(est, gt) for row, est in rows.items()}
        out[f"{t:g}"] = table
    return out


def mouth_slots() -> list[int]:
    """Columns of the 4 per-frame mouth openings, after every signal's mean (``motion_codec.motion_features``)."""
    from avatarv.models.dit.motion_codec import MOTION_SIGNALS

    return list(range(len(MOTION_SIGNALS), len(MOTION_SIGNALS) + 4))


def score(est: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """Raw motion rows ``[N, dim]`` against the ground truth's: r per signal, the per-frame mouth's std ratio,
    the largest blink."""
    from avatarv.models.dit.motion_codec import MOTION_SIGNALS

    column = {n: i for i, n in enumerate(MOTION_SIGNALS)}
    slots = mouth_slots()
    r = {}
    for s in SIGNALS:
        if s == "mouth_open":  # per-frame slots: the lip-sync detail
            a, b = est[:, slots].flatten(), gt[:, slots].flatten()
        else:
            a, b = est[:, column[s]], gt[:, column[s]]
        r[s] = pearson(a.numpy(), b.numpy())
    r["mouth_std_ratio"] = float(est[:, slots].std() / gt[:, slots].std().clamp(min=1e-8))
    r["blink_max"] = float(est[:, column["blink"]].max())
    return r


@torch.no_grad()
def sampled(pipe, items, samplers: dict[str, dict], seed: int) -> dict:
    """Motion generated by the pipeline's own chunk sampler (first latent frame known, the item's audio and
    reference) against the ground truth: what generation makes of what the denoiser knows."""
    from avatarv.diffusion import GuidanceScales
    from avatarv.models.dit import RefInputs, RefKVCache
    from avatarv.models.dit.motion_codec import MotionCodec
    from avatarv.pipelines.chunks import Chunk
    from avatarv.pipelines.generate import GenerationOptions

    codec = MotionCodec.from_config(pipe.dit.cfg)
    text = pipe.encode_text("")
    gt = torch.cat([it["motion"][1:].float() for it in items])
    table = {}
    for name, spec in samplers.items():
        spec = dict(spec)
        if "guidance" in spec:
            spec["guidance"] = GuidanceScales.parse(spec["guidance"])
        opts = GenerationOptions(**spec)
        g = torch.Generator().manual_seed(seed)
        rows = []
        for it in items:
            x0 = it["latents"][None].float()
            ref = RefInputs(it["ref_latents"][None].float(), codec.normalize(it["ref_motion"][None].float()))
            chunk = Chunk(index=0, start_frame=0, num_latents=x0.shape[2], prefix_latents=0)
            _, motion = pipe.sample_chunk(chunk, x0[:, :, :1], it["audio"].float(), [ref], [RefKVCache()],
                                          opts.sampling(), g, text=text)
            rows.append(motion[1:].float())
        table[name] = score(torch.cat(rows), gt)
    return table


def markdown(result: dict) -> str:
    cols = list(SIGNALS) + ["mouth_std_ratio", "blink_max"]
    lines = []
    for t, table in result.items():
        title = "sampled motion" if t == "sampled" else f"t = {t}: the clean estimate"
        lines += [f"\n{title}: Pearson r with the ground truth\n",
                  "| condition | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for row, r in table.items():
            lines.append(f"| {row} | " + " | ".join(f"{r[c]:+.2f}" for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--t", default="1.0,0.8,0.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=8, help="sampler steps of the generated rows")
    ap.add_argument("--guidance", default="audio=2;audio=4",
                    help="';'-separated --guidance settings to sample with as well")
    ap.add_argument("--out", type=Path, help="also write the tables as markdown here")
    ap.add_argument("--zero-audio-positions", action="store_true",
                    help="ablation: set a DiT's learned audio window positions to zero (DiTConfig.audio_positions)")
    args = ap.parse_args()
    from avatarv.pipelines.generate import AvatarPipeline

    torch.manual_seed(args.seed)
    pipe = AvatarPipeline.from_checkpoint(args.checkpoint)
    if args.zero_audio_positions:
        if pipe.dit.audio_position is None:
            raise SystemExit(f"motion_probe: {args.checkpoint}: the DiT has no audio positions to zero")
        with torch.no_grad():
            pipe.dit.audio_position.zero_()
    items = make_items(pipe, args.clips, args.seed)
    result = probe(pipe, items, [float(x) for x in args.t.split(",")], args.seed)
    samplers = {f"{name} {args.steps} steps": {"steps": args.steps, "sampler": name} for name in ("overshoot", "euler")}
    for g in filter(None, args.guidance.split(";")):
        samplers[f"euler {args.steps} steps, {g}"] = {"steps": args.steps, "sampler": "euler", "guidance": g}
    result["sampled"] = sampled(pipe, items, samplers, args.seed)
    text = markdown(result)
    print(text)
    if args.out:
        args.out.write_text(f"# Motion probe: {args.checkpoint}\n{text}\n")
    print(json.dumps({"benchmark": "motion_probe", "checkpoint": str(args.checkpoint), "clips": args.clips,
                      "zero_audio_positions": args.zero_audio_positions,
                      "result": result}))


if __name__ == "__main__":
    main()
