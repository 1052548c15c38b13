"""What can go wrong talking to GitHub, sorted by what the caller should do about it."""

from __future__ import annotations


class GitHubError(Exception):
    """Base class: any failed call to GitHub."""


class GitHubUnavailable(GitHubError):
    """5xx, timeout or connection failure: try again later with backoff."""


class RateLimited(GitHubError):
    """A primary or secondary rate limit: no call until ``retry_after`` seconds have passed."""

    def __init__(self, message: str, retry_after: float, *, secondary: bool) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.secondary = secondary


class NotFound(GitHubError):
    """404: the object is gone or the token may not see it."""


class GitHubRequestError(GitHubError):
    """Any other 4xx: retrying will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status
