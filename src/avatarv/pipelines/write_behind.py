"""Write-behind: a chunk's output work (cross-fade, frame filter, mp4 append, motion track) on one worker thread
while the next chunk samples.

The chunk loop is a chain (chunk i + 1 needs chunk i's re-encoded tail), but writing chunk i is not on it: the
worker runs each submitted job in order, at most one behind the loop (``submit`` first waits for the previous
job), so memory stays one chunk and an error in a write surfaces at the next ``submit`` or at ``close`` — never
lost. PyAV's encoder, OpenCV and numpy's large-array kernels release the GIL, so the worker overlaps the DiT's
own threads where they leave a core idle. ``enabled=False`` runs every job inline (the old order, for
debugging and for comparison in ``benchmarks/student_rtf60.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class WriteBehind:
    def __init__(self, enabled: bool = True):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avatarv-write") if enabled else None
        self._last: Future | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` after every earlier one (inline when disabled); re-raises an earlier job's error."""
        if self._pool is None:
            job()
            return
        self.wait()
        self._last = self._pool.submit(job)

    def wait(self) -> None:
        """Block until every submitted job has run; re-raises the error of one that failed."""
        last, self._last = self._last, None
        if last is not None:
            last.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the loop already failed: finish what was queued, keep the loop's error (not the worker's)
            self.close()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["WriteBehind"]
