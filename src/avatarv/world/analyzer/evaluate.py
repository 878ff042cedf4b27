"""Do behaviour statistics measured by the analyzer (from pixels) rank identities like their true traits?

    avatarv world analyzer-eval [--identities 12] [--seconds 30] [--size 128]
    python -m avatarv.world.analyzer.evaluate ...    # the same command

Held-out identities and scenes (ids never used in training) talk for ``seconds`` each; the analyzer's
predicted signals give blink rate, nod/sway amplitude, mouth gain, level and lag, smile rate; we report Spearman
rank correlations with the true traits, next to the same statistics computed from the true signals.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from avatarv.analyzer.predictor import WorldAnalyzer
from avatarv.world.analyzer.behaviour import behaviour_stats
from avatarv.world.clip import make_clip

HELD_OUT_IDS, HELD_OUT_SCENES = 2_000_000, 200_000
PAIRS = {  # statistic → trait
    "blink_rate": "blink_rate",
    "nod_amp": "nod_amp",
    "sway_amp": "sway_amp",
    "mouth_gain": "mouth_gain",
    "mouth_level": "mouth_gain",
    "smile_rate": "smile_habit",
}


def behaviour_agreement(analyzer: WorldAnalyzer, identities: int = 12, seconds: float = 30.0, size: int = 128,
                        seed: int = 0) -> dict:
    rows = []
    for k in range(identities):
        clip = make_clip(HELD_OUT_IDS + k, HELD_OUT_SCENES + k, seconds, size, seed)
        pred = analyzer.predict(clip.frames)
        lab = clip.labels
        true_signals = {"pitch": lab.pose[:, 1], "yaw": lab.pose[:, 0], "mouth_open": lab.mouth_open,
                        "blink": lab.blink, "smile": lab.smile}
        rows.append({
            "traits": clip.meta["identity"]["behaviour"],
            "predicted": behaviour_stats(pred, clip.audio),
            "from_labels": behaviour_stats(true_signals, clip.audio),
        })
    out = {"identities": identities, "seconds": seconds, "size": size, "spearman": {}, "spearman_from_labels": {}}
    for stat, trait in PAIRS.items():
        t = [r["traits"][trait] for r in rows]
        out["spearman"][stat] = float(spearmanr([r["predicted"][stat] for r in rows], t).statistic)
        out["spearman_from_labels"][stat] = float(spearmanr([r["from_labels"][stat] for r in rows], t).statistic)
    out["per_identity"] = rows
    out["mouth_lag_exact"] = float(np.mean([r["predicted"]["mouth_lag"] == r["traits"]["mouth_lag_frames"]
                                            for r in rows]))
    out["nod_freq_abs_err_hz"] = float(np.mean([abs(r["predicted"]["nod_freq"] - r["traits"]["nod_freq"])
                                                for r in rows]))
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m avatarv.world.analyzer.evaluate``: the command ``avatarv world analyzer-eval`` (its options and help are there)."""
    import typer

    from avatarv.world.cli import analyzer_eval

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(analyzer_eval)
    app(args=argv, prog_name="python -m avatarv.world.analyzer.evaluate")


if __name__ == "__main__":
    main()
