"""``avatarv watermark detect|embed|manifest``, generate's hook (mark_output) and C2PA signing."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.cli import main
from avatarv.media import StreamingMp4Writer, write_mp4
from avatarv.media.testing import tone
from avatarv.provenance.watermark import mark_output, recorded_watermark


def _clip(path, seconds=2.0, size=256, fmp4=False):
    """Textured moving frames (noise + a moving bar) with a tone: what a generated video looks like to the mark."""
    rng = np.random.default_rng(0)
    base = rng.integers(40, 200, (size, size, 3), dtype=np.uint8)
    base = np.asarray(np.repeat(np.repeat(base[::4, ::4], 4, 0), 4, 1))
    frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(int(25 * seconds))])
    audio = tone(seconds, 16000)
    if fmp4:
        with StreamingMp4Writer(path, 25, size, size) as writer:
            writer.append(frames, audio)
        return path
    return write_mp4(path, frames, 25, audio)


def test_embed_then_detect_cli(tmp_path, capsys):
    src = _clip(tmp_path / "in.mp4")
    assert main(["watermark", "detect", str(src)]) == 0
    assert capsys.readouterr().out.strip() == "none"
    assert main(["watermark", "embed", str(src), str(tmp_path / "out.mp4"), "--payload", "00ff00ff00ff00ff"]) == 0
    assert capsys.readouterr().out.strip() == "00ff00ff00ff00ff"
    assert main(["watermark", "detect", str(tmp_path / "out.mp4")]) == 0
    assert capsys.readouterr().out.strip() == "00ff00ff00ff00ff"
    assert recorded_watermark(tmp_path / "out.mp4") == "00ff00ff00ff00ff"


@pytest.mark.parametrize("content", [None, b"not a video at all"], ids=["missing", "corrupt"])
def test_detect_bad_file_is_one_line_exit_2(tmp_path, capsys, content):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    assert main(["watermark", "detect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]


def test_mark_output_on_streamed_fmp4_keeps_audio(tmp_path):
    from avatarv.media import probe

    out = _clip(tmp_path / "gen.mp4", fmp4=True)
    before = probe(out)
    hex_id = mark_output(out)
    assert recorded_watermark(out) == hex_id and len(hex_id) == 16
    info = probe(out)
    assert info.has_audio and info.has_video and info.num_frames == before.num_frames == 50
    from avatarv.provenance.watermark import detect_file

    assert detect_file(out).hex == hex_id
    assert mark_output(out, enabled=False) == "off" and recorded_watermark(out) == "off"


def test_c2pa_manifest_says_ai_generated(tmp_path, capsys):
    pytest.importorskip("c2pa")
    from avatarv.provenance.c2pa import generate_key, read_manifest, sign_mp4

    src = _clip(tmp_path / "gen.mp4", seconds=1.0, fmp4=True)
    assert read_manifest(src) is None
    keys = generate_key(tmp_path / "keys")
    signed = sign_mp4(src, tmp_path / "signed.mp4", keys, {"title": "job 42"})
    manifest = read_manifest(signed)
    assert manifest["ai_generated"] and manifest["title"] == "job 42"
    assert manifest["validation_state"] in ("Valid", "Trusted")
    assert main(["watermark", "manifest", str(signed)]) == 0
    assert '"ai_generated": true' in capsys.readouterr().out
