"""What a server is configured with: where its data lives, how jobs run, and what each user may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Limits:
    """Per-user limits (an admin may give a user other numbers; ``users.limits`` in the store)."""

    concurrent_jobs: int = 2  # queued + running + held
    upload_bytes: int = 200 * 1024 * 1024
    output_minutes_per_day: float = 30.0  # seconds of speech submitted in the last 24 h, summed
    requests_per_minute: float = 120.0  # token bucket refill rate
    burst: int = 60  # token bucket size

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict | None, base: Limits | None = None) -> Limits:
        merged = {**(base or cls()).to_dict(), **{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}}
        return cls(**merged)


@dataclass
class ServerConfig:
    """``avatarv serve``'s options. The job fields pass through to the pipeline unchanged (``jobs.JobSpec``)."""

    data: Path = Path("avatarv-data")
    workers: int = 1
    queue_size: int = 8  # jobs queued or running, all users together; more get 429
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    # the pipeline: the bundled world-small checkpoint by default; --preset (random weights) for tests;
    # --weights DIR for the InfiniteTalk mode with real weights
    checkpoint: Path | None = None
    preset: str | None = None
    weights: Path | None = None
    infinitetalk: dict | None = None  # InfiniteTalk mode: InfiniteTalkOptions fields for every job (size, ...)
    steps: int | None = None  # None: the pipeline's default (24; InfiniteTalk 40)
    max_steps: int = 50
    max_seconds: float = 120.0  # longest speech accepted for one job
    limits: Limits = field(default_factory=Limits)
    session_hours: float = 12.0
    challenge_ttl_s: float = 600.0
    blocklist: Path | None = None  # moderation: one refused term per line, "review: term" to hold for review
    review_uploads: bool = False  # hold every job for an admin's approval
    login_per_minute: float = 10.0  # per client address, before the token is known
    max_attempts: int = 3  # a job whose worker died this many times fails

    def __post_init__(self):
        self.data = Path(self.data)
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be local or ray, got {self.executor!r}")
        if self.workers < 1 or self.queue_size < 1:
            raise ValueError("workers and queue_size must be at least 1")
