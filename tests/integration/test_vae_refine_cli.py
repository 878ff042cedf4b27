"""``avatarv train vae-decoder``: a mouth-weighted decoder refinement runs, records its spec and keeps the encoder."""

from __future__ import annotations

import json

import torch

from avatarv.cli import main
from avatarv.config import get_preset
from avatarv.models.vae import VideoVAE


def test_mouth_weighted_decoder_refinement(tmp_path):
    torch.manual_seed(0)
    init = tmp_path / "vae0"
    VideoVAE(get_preset("tiny").vae).save_pretrained(init)
    out = tmp_path / "refine"
    args = ["train", "vae-decoder", "--init", str(init), "--out", str(out), "--preset", "tiny", "--steps", "2",
            "--frames", "5", "--identities", "1", "--scenes", "1", "--crop", "2", "--crop-focus", "--heldout", "1",
            "--face-weight", "1", "--mouth-weight", "8", "--lr", "1e-4"]
    assert main(args) == 0
    done = json.loads((out / "DONE").read_text())
    assert done["mouth_weight"] == 8.0 and done["face_weight"] == 1.0 and done["lr"] == 1e-4 and done["steps"] == 2
    assert done["crop_focus"] is True and done["crop_latents"] == 2
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all("l1_weighted" in rec for rec in log)
    old, new = VideoVAE.from_pretrained(init), VideoVAE.from_pretrained(out / "vae")
    enc_old, enc_new = old.model.encoder.state_dict(), new.model.encoder.state_dict()
    assert all(torch.equal(enc_old[k], enc_new[k]) for k in enc_old)  # the latents stay valid
    dec_old, dec_new = old.model.decoder.state_dict(), new.model.decoder.state_dict()
    assert any(not torch.equal(dec_old[k], dec_new[k]) for k in dec_old)
    # finished: a second run only reads DONE back
    assert main(args) == 0 and len((out / "log.jsonl").read_text().splitlines()) == 2
