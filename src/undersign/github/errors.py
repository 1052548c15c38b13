"""What can go wrong talking to GitHub, sorted by what the caller should do about it."""

from __future__ import annotations

#: What an operator sets so that undersign can ask GitHub at all: said wherever a login must
#: be looked up (the import, the company pages and commands) and there is neither a bot
#: token nor a GitHub App, which no retry mends.
GITHUB_CREDENTIALS_FIX = (
    "set UNDERSIGN_GITHUB_TOKEN, or the GitHub App's UNDERSIGN_GITHUB_APP_ID and "
    "UNDERSIGN_GITHUB_APP_PRIVATE_KEY"
)


class GitHubNotConfigured(RuntimeError):
    """Neither a bot token nor a GitHub App is configured: undersign cannot ask GitHub at
    all, and no retry mends it (an operator must ``GITHUB_CREDENTIALS_FIX``). A
    ``RuntimeError``, as before it had a name: callers that must tell it from a failing call
    catch it by this name instead of asking for the client first."""


class GitHubError(Exception):
    """Base class: any failed call to GitHub."""


class GitHubUnavailable(GitHubError):
    """5xx, timeout or connection failure: try again later with backoff."""


class RateLimited(GitHubError):
    """A primary or secondary rate limit: no call until ``retry_after`` seconds have passed.
    ``scope``: the limit that ran out when it is narrower than the token's or the app's
    (``installation:N``: GitHub counts an installation's primary limit on its own)."""

    def __init__(
        self, message: str, retry_after: float, *, secondary: bool, scope: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.secondary = secondary
        self.scope = scope


class NotFound(GitHubError):
    """404: the object is gone or the token may not see it."""


class InstallationGone(NotFound):
    """App mode: GitHub answers 404 to a token request for an installation undersign had
    recorded, and to ``GET /app/installations/{id}`` too: the app was removed from that
    account since (its ``installation deleted`` webhook missed). A NotFound, as what that
    installation covered can no longer be seen; a read any installation may make goes on
    with another one (``GitHubApp.token_for_path``)."""

    def __init__(self, installation_id: int) -> None:
        super().__init__(f"installation {installation_id} was removed on GitHub")
        self.installation_id = installation_id


class GitHubRequestError(GitHubError):
    """Any other 4xx: retrying will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GitHub answered {status}: {message}")
        self.status = status


class InstallationSuspended(GitHubRequestError):
    """App mode: the account (or the app's owner) suspended this installation, so GitHub
    refuses its token requests (403 "This installation has been suspended") until it is
    unsuspended. Retrying will not help; a read any installation may make goes on with
    another one (``GitHubApp.token_for_path``)."""

    def __init__(self, installation_id: int) -> None:
        GitHubError.__init__(
            self,
            f"installation {installation_id} is suspended on GitHub: nothing can be read or "
            "written with it until it is unsuspended",
        )
        self.status = 403
        self.installation_id = installation_id


class AppNotInstalled(GitHubRequestError):
    """App mode: a call any installation could make (a public read such as
    ``GET /users/{login}``), but the app is installed nowhere, so there is no token to make
    it with. Installing the app is the fix, not waiting."""

    def __init__(self, path: str) -> None:
        # No "GitHub answered": GitHub was never asked, undersign had no token to ask with.
        GitHubError.__init__(
            self,
            f"the GitHub App is not installed on any account, and {path} is read with an "
            "installation's token: install the app on an organisation or account first",
        )
        self.status = 400


#: What only whoever runs undersign (or the account the app is installed on) can mend: no
#: bot token and no App, an App installed nowhere, every installation suspended. Their
#: messages name settings and installations, which are the operator's business: a page shows
#: them to instance admins only, and plainly tells anyone else that it cannot help now.
NEEDS_AN_OPERATOR: tuple[type[Exception], ...] = (
    GitHubNotConfigured,
    AppNotInstalled,
    InstallationSuspended,
)
