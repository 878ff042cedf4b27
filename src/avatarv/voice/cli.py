"""``avatarv voice``: profile a voice sample, speak text (plain or in a voice), prepare user speech."""

from __future__ import annotations

from pathlib import Path

import typer

from avatarv.errors import InputError

app = typer.Typer(name="voice", help="Voice engine: text to speech in a user's voice, offline.", no_args_is_help=True)


@app.command("profile")
def profile_cmd(
    sample: Path = typer.Argument(..., help="Voice sample: ≥ 5 s of speech, any audio or video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Profile JSON to write."),
    tune: bool = typer.Option(
        True, help="Choose the source voice and tune timbre by speaker-embedding similarity (≈ 1 min)."),
    engine: str = typer.Option(None, help="Synthesiser to tune for: piper, espeak or kokoro:VOICE (default: "
                               "the nearest of piper's and Kokoro's voices)."),
) -> None:
    """Measure a voice sample and save its VoiceProfile (JSON, with its speaker embedding)."""
    from avatarv.voice.profile import profile

    voice = profile(sample, synthesiser=engine, tune=tune)
    voice.save(out)
    typer.echo(
        f"{out}: F0 {voice.f0_median_hz:.0f} Hz (5–95 %: {voice.f0_p5_hz:.0f}–{voice.f0_p95_hz:.0f}), "
        f"{voice.rate_syllables_per_s:.2f} syll/s ({voice.rate_method}), {voice.loudness_lufs:.1f} LUFS"
    )


@app.command("say")
def say_cmd(
    text: str = typer.Option(None, "--text", "-t", help="What to say."),
    out: Path = typer.Option(None, "--out", "-o", help="Wav file to write (16 kHz mono)."),
    voice: Path = typer.Option(None, "--voice", "-v", help="Voice sample (any audio/video) or profile JSON."),
    engine: str = typer.Option(
        None,
        help="piper, kokoro (Kokoro-82M voices), espeak (fallback formant synthesiser) or pocket-tts "
        "(neural cloning); default: with --voice, the source voice chosen for the sample, else piper. "
        "'--engine list' shows which are available here and why the others are not.",
    ),
    weights: Path = typer.Option(None, help="Local weights folder for --engine pocket-tts."),
) -> None:
    """Speak text, matched to a voice when --voice is given; writes a 16 kHz mono wav."""
    from avatarv.voice.audio import write_wav
    from avatarv.voice.engine import check_text, load_voice, source_synthesiser, speak
    from avatarv.voice.engines import ENGINES, engine_status, format_status

    if engine == "list":
        typer.echo(format_status(engine_status(weights)))
        return
    if engine not in (None, *ENGINES):
        status = "; ".join(f"{s.name}: {'available' if s.available else s.detail}" for s in engine_status(weights))
        raise InputError(f"unknown --engine {engine!r} ({status})")
    if engine is not None:
        chosen = next(s for s in engine_status(weights) if s.name == engine)
        if not chosen.available:
            raise InputError(f"--engine {engine} is not available here: {chosen.detail}")
    if out is None:
        raise InputError("--out FILE.wav is required")
    text = check_text(text)
    if engine == "pocket-tts":
        from avatarv.voice.audio import load_audio, normalise_loudness
        from avatarv.voice.cloning import PocketTTSCloner

        if voice is None or voice.suffix == ".json":
            raise InputError("--engine pocket-tts needs --voice SAMPLE (an audio file, not a profile)")
        cloner = PocketTTSCloner(weights)
        wave, name = normalise_loudness(cloner.speak(text, load_audio(voice))), cloner.name
    else:
        profile = load_voice(voice) if voice is not None else None
        synthesiser = engine
        if engine == "kokoro":  # the profile's Kokoro voice when it chose one, else the first woman's
            chosen = (profile.source_synthesiser or "") if profile is not None else ""
            synthesiser = chosen if chosen.startswith("kokoro:") else "kokoro:jf_alpha"
        wave, name = speak(text, profile, synthesiser=synthesiser), source_synthesiser(profile, synthesiser).name
    write_wav(out, wave)
    typer.echo(f"{out}: {wave.size / 16000:.2f} s, synthesiser: {name}" + (f", voice: {voice}" if voice else ""))


@app.command("prepare")
def prepare_cmd(
    audio: Path = typer.Argument(..., help="User speech: any audio or video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Wav file to write (16 kHz mono, -23 LUFS)."),
) -> None:
    """Pass-through: user speech → 16 kHz mono at -23 LUFS, same duration."""
    from avatarv.voice.audio import prepare, write_wav

    wave = prepare(audio)
    write_wav(out, wave)
    typer.echo(f"{out}: {wave.size / 16000:.2f} s, 16 kHz mono, -23 LUFS")
