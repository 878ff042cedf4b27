"""An identity: how a synthetic person looks (static traits) and how they move (behavioural traits).

Both are sampled from ``(seed, identity_id)`` alone, so the same person appears in any number of scenes
and clips. Behavioural traits are the ground truth that behaviour-similarity metrics must recover from
pixels: blink rate, nod/sway amplitude and frequency, mouth gain and lag behind the audio, smile habit,
brow raises on stressed syllables, gaze habits, shrugs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from avatarv.world.seeds import rng

FPS = 25

# sRGB skin tones from light to dark; an identity interpolates between neighbours.
SKIN_TONES = np.array(
    [
        [0.97, 0.83, 0.72],
        [0.93, 0.74, 0.60],
        [0.84, 0.62, 0.47],
        [0.71, 0.49, 0.34],
        [0.56, 0.37, 0.25],
        [0.40, 0.26, 0.17],
    ],
    dtype=np.float32,
)
HAIR_COLOURS = {
    "black": (0.06, 0.05, 0.05),
    "dark_brown": (0.20, 0.12, 0.08),
    "brown": (0.36, 0.23, 0.13),
    "auburn": (0.50, 0.22, 0.10),
    "blond": (0.80, 0.66, 0.40),
    "grey": (0.55, 0.55, 0.55),
    "white": (0.85, 0.85, 0.83),
    "dyed_blue": (0.15, 0.25, 0.55),
}
IRIS_COLOURS = {
    "dark_brown": (0.18, 0.10, 0.05),
    "brown": (0.35, 0.20, 0.08),
    "hazel": (0.45, 0.35, 0.15),
    "green": (0.25, 0.42, 0.25),
    "blue": (0.25, 0.42, 0.65),
    "grey": (0.45, 0.50, 0.55),
}
HAIR_STYLES = ("bald", "buzz", "short", "side_part", "curly", "bob", "long", "bun")
# espeak-ng voice variants (files in espeak-ng-data/voices/!v); the base language is always English.
VOICE_VARIANTS_MALE = ("m1", "m2", "m3", "m4", "m5", "m7", "paul", "john", "edward", "david", "Mike")
VOICE_VARIANTS_FEMALE = ("f1", "f2", "f3", "f4", "f5", "Annie", "belinda", "linda", "Andrea", "aunty")
ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029")


@dataclass(frozen=True)
class Looks:
    """Static appearance. Lengths are in face units (half face width ≈ 1, eye line at y = 0)."""

    jaw_width: float  # half width of the face at ear level
    face_length: float  # eye line → chin
    jaw_power: float  # superellipse exponent: < 2 pointed chin, > 2 square jaw
    chin_width: float  # 0 pointed … 1 broad chin
    forehead: float  # eye line → top of skull
    skin: tuple[float, float, float]
    eye_width: float
    eye_open: float  # lid aperture (height / width)
    eye_spacing: float  # half distance between eye centres
    eye_tilt: float  # outer corner up (+) or down (-), face units
    iris: tuple[float, float, float]
    iris_name: str
    brow_thickness: float
    brow_arch: float
    brow_height: float
    hair_style: str
    hair: tuple[float, float, float]
    hair_name: str
    hairline: float  # how far the hair comes down the forehead (0 high … 1 low fringe)
    hair_volume: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_upper: float
    lip_lower: float
    lips: tuple[float, float, float]
    ear_size: float
    glasses: str  # "none" | "round" | "square"
    glasses_colour: tuple[float, float, float]
    earrings: bool
    earring_colour: tuple[float, float, float]
    facial_hair: str  # "none" | "stubble" | "moustache"
    teeth: tuple[float, float, float]
    teeth_gap: bool
    clothes: tuple[float, float, float]
    collar: str  # "crew" | "vee" | "shirt"
    shoulder_width: float


@dataclass(frozen=True)
class Behaviour:
    """How the person moves; frequencies in Hz, angles in degrees, times in seconds."""

    blink_rate: float  # blinks per minute
    blink_duration: float
    nod_amp: float  # pitch oscillation amplitude
    nod_freq: float
    sway_amp: float  # yaw oscillation amplitude
    sway_freq: float
    roll_amp: float
    stress_nod: float  # extra pitch dip on stressed syllables
    mouth_gain: float  # mouth openness per unit of audio envelope
    mouth_lag_frames: int  # mouth follows the audio this many frames later (exact, integer frames)
    smile_habit: float  # fraction of time spent smiling
    smile_strength: float
    brow_raise_prob: float  # probability of a brow raise on a stressed syllable
    brow_raise_amp: float
    gaze_aversion_rate: float  # look-aways per minute
    gaze_direction: float  # preferred look-away angle (radians, image plane)
    gaze_jitter: float
    shrug_rate: float  # shoulder shrugs per minute

    @property
    def mouth_lag_s(self) -> float:
        return self.mouth_lag_frames / FPS


@dataclass(frozen=True)
class Voice:
    """espeak-ng parameters and the formant fallback's pitch."""

    accent: str
    variant: str
    pitch: int  # espeak 0..99
    rate: int  # words per minute
    f0: float  # Hz, for the formant fallback
    female: bool

    @property
    def espeak_voice(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass(frozen=True)
class Identity:
    identity_id: int
    seed: int
    looks: Looks
    behaviour: Behaviour
    voice: Voice

    def traits(self) -> dict:
        """All traits as plain JSON-ready values."""
        return {"looks": asdict(self.looks), "behaviour": asdict(self.behaviour), "voice": asdict(self.voice)}


def _rgb(values) -> tuple[float, float, float]:
    return tuple(float(round(float(np.clip(v, 0.0, 1.0)), 4)) for v in values)


def _pick(r: np.random.Generator, options, p=None):
    return options[int(r.choice(len(options), p=p))]


def _looks(r: np.random.Generator, female: bool) -> Looks:
    u = r.uniform
    t = u(0, len(SKIN_TONES) - 1)
    lo = int(np.floor(t))
    hi = min(lo + 1, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[lo] * (1 - (t - lo)) + SKIN_TONES[hi] * (t - lo)
    skin = skin * u(0.95, 1.05, 3)
    dark = t / (len(SKIN_TONES) - 1)
    hair_p = np.array([3, 3, 2.5, 1, 1.5 * (1 - dark), 0.6, 0.25, 0.2])
    hair_name = _pick(r, list(HAIR_COLOURS), p=hair_p / hair_p.sum())
    hair = np.array(HAIR_COLOURS[hair_name]) * u(0.85, 1.15, 3)
    iris_p = np.array([4, 3, 1, 1 - 0.8 * dark, 1.2 - dark, 0.6 - 0.4 * dark])
    iris_name = _pick(r, list(IRIS_COLOURS), p=iris_p / iris_p.sum())
    style_p = (
        np.array([0.2, 0.5, 1, 1, 1, 2, 3, 1.5]) if female else np.array([1.2, 1.5, 3, 2, 1, 0.3, 0.4, 0.1])
    )
    hair_style = _pick(r, HAIR_STYLES, p=style_p / style_p.sum())
    lips = skin * np.array([0.85, 0.55, 0.55]) * u(0.85, 1.05) + (
        np.array([0.12, 0.0, 0.02]) if female and r.random() < 0.5 else 0.0
    )
    clothes = r.uniform(0.05, 0.9, 3) * u(0.6, 1.0)
    glasses = _pick(r, ("none", "round", "square"), p=[0.78, 0.11, 0.11])
    facial_hair = "none" if female else _pick(r, ("none", "stubble", "moustache"), p=[0.75, 0.15, 0.10])
    return Looks(
        jaw_width=float(u(0.9, 1.08) + (0.0 if female else 0.03)),
        face_length=float(u(1.38, 1.68) - (0.05 if female else 0.0)),
        jaw_power=float(u(1.6, 2.6) if female else u(2.0, 3.2)),
        chin_width=float(u(0.2, 0.8)),
        forehead=float(u(1.25, 1.45)),
        skin=_rgb(skin),
        eye_width=float(u(0.44, 0.54)),
        eye_open=float(u(0.30, 0.42) + (0.03 if female else 0.0)),
        eye_spacing=float(u(0.46, 0.54)),
        eye_tilt=float(u(-0.03, 0.05)),
        iris=_rgb(np.array(IRIS_COLOURS[iris_name]) * u(0.85, 1.15, 3)),
        iris_name=iris_name,
        brow_thickness=float(u(0.05, 0.09) if female else u(0.08, 0.13)),
        brow_arch=float(u(0.02, 0.12)),
        brow_height=float(u(0.30, 0.40)),
        hair_style=hair_style,
        hair=_rgb(hair),
        hair_name=hair_name,
        hairline=float(u(0.0, 1.0)),
        hair_volume=float(u(0.05, 0.3)),
        nose_length=float(u(0.55, 0.74)),
        nose_width=float(u(0.2, 0.34) + (0.0 if female else 0.02)),
        mouth_width=float(u(0.38, 0.48)),
        lip_upper=float(u(0.06, 0.11)),
        lip_lower=float(u(0.08, 0.15)),
        lips=_rgb(lips),
        ear_size=float(u(0.30, 0.40)),
        glasses=glasses,
        glasses_colour=_rgb(r.uniform(0.0, 0.5, 3)),
        earrings=bool(r.random() < (0.45 if female else 0.08)),
        earring_colour=_rgb(_pick(r, ((0.85, 0.7, 0.25), (0.8, 0.8, 0.82), (0.7, 0.2, 0.2)))),
        facial_hair=facial_hair,
        teeth=_rgb(np.array([0.95, 0.93, 0.86]) * u(0.85, 1.0) - np.array([0.0, 0.02, 0.08]) * u(0, 1)),
        teeth_gap=bool(r.random() < 0.1),
        clothes=_rgb(clothes),
        collar=_pick(r, ("crew", "vee", "shirt")),
        shoulder_width=float(u(1.9, 2.4) - (0.2 if female else 0.0)),
    )


def _behaviour(r: np.random.Generator) -> Behaviour:
    u = r.uniform
    return Behaviour(
        blink_rate=float(u(6.0, 30.0)),
        blink_duration=float(u(0.10, 0.32)),
        nod_amp=float(u(0.5, 6.0)),
        nod_freq=float(u(0.2, 1.1)),
        sway_amp=float(u(0.5, 7.0)),
        sway_freq=float(u(0.1, 0.6)),
        roll_amp=float(u(0.3, 3.0)),
        stress_nod=float(u(0.0, 4.0)),
        mouth_gain=float(u(0.45, 1.35)),
        mouth_lag_frames=int(r.integers(0, 4)),
        smile_habit=float(u(0.0, 0.6)),
        smile_strength=float(u(0.4, 1.0)),
        brow_raise_prob=float(u(0.0, 0.7)),
        brow_raise_amp=float(u(0.04, 0.12)),
        gaze_aversion_rate=float(u(0.0, 15.0)),
        gaze_direction=float(u(-np.pi, np.pi)),
        gaze_jitter=float(u(0.01, 0.08)),
        shrug_rate=float(u(0.0, 6.0)),
    )


def _voice(r: np.random.Generator, female: bool) -> Voice:
    variants = VOICE_VARIANTS_FEMALE if female else VOICE_VARIANTS_MALE
    pitch = int(r.integers(35, 75) if female else r.integers(15, 55))
    return Voice(
        accent=_pick(r, ACCENTS, p=[0.4, 0.25, 0.15, 0.1, 0.1]),
        variant=_pick(r, variants),
        pitch=pitch,
        rate=int(r.integers(135, 185)),
        f0=float((170.0 if female else 100.0) * (0.8 + 0.4 * pitch / 99)),
        female=female,
    )


def sample_identity(identity_id: int, seed: int = 0) -> Identity:
    """The identity ``identity_id`` of world ``seed``; pure function of its two integers."""
    female = bool(rng(seed, "identity.sex", identity_id).random() < 0.5)
    return Identity(
        identity_id=int(identity_id),
        seed=int(seed),
        looks=_looks(rng(seed, "identity.looks", identity_id), female),
        behaviour=_behaviour(rng(seed, "identity.behaviour", identity_id)),
        voice=_voice(rng(seed, "identity.voice", identity_id), female),
    )
