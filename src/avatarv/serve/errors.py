"""The one error the API raises: an HTTP status and one line for a person (``{"detail": "..."}``)."""

from __future__ import annotations


class ApiError(Exception):
    """``ApiError(409, "avatar a1: no verified consent")``; ``retry_after`` (seconds) adds the header (429)."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.status, self.detail, self.retry_after = status, detail, retry_after

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}


def not_found(kind: str, ident: str) -> ApiError:
    """Another user's id and an id that does not exist read the same: 404, so ids leak nothing."""
    return ApiError(404, f"no {kind} {ident}")
