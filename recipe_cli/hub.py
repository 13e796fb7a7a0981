"""The Hugging Face Hub side of a push: one commit of a branch's files, read back before it counts.

``commit_files`` opens (or creates) the branch, makes one commit that adds every file and deletes
what the branch held that the upload lacks, then reads the branch back: the push counts only once
the branch's head is that commit and holds every file. Network failures and 5xx/429 answers are
retried (``call_hub``); any other answer ends the push with a one-line message naming the fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from recipe_cli.errors import RecipeError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds to wait before each new attempt at a Hub call that failed on the network or with a 5xx/429.
RETRY_DELAYS = (2.0, 8.0, 30.0)
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class UploadFile:
    """One file of a push: where it goes in the repo, where it is on disk, its size in bytes."""

    path_in_repo: str
    local: Path
    size: int


OFFLINE = (
    "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set), so nothing can be pushed; "
    "unset HF_HUB_OFFLINE and push again"
)


def require_token() -> None:
    """Fail now, not after training, when there is no Hub token to push with."""
    from huggingface_hub import get_token

    if get_token() is None:
        raise RecipeError("not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN, then push again")


def require_hub() -> None:
    """Fail now, before a push stages its card, plots and converted weights, when it could not reach the Hub:
    offline mode, or no token."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise RecipeError(OFFLINE)
    require_token()


def commit_files(
    repo_id: str, revision: str, files: list[UploadFile], message: str, *, private: bool, overwrite: bool
) -> tuple[str, str]:
    """Commit ``files`` as the whole content of ``repo_id@revision``; return the confirmed commit's id and URL.

    The repo is created (``private``) when missing, the branch from main when missing; a branch that
    already holds files is replaced only with ``overwrite``.
    """
    require_token()
    from huggingface_hub import HfApi

    api = HfApi()
    branch = Branch(repo_id, revision, files)
    call_hub(lambda: api.whoami(), "check the token", repo_id)
    call_hub(lambda: api.create_repo(repo_id, private=private, exist_ok=True), "create the repo", repo_id)
    existing, head = _open_revision(api, branch, overwrite)
    oid, url = call_hub(_committer(api, branch, existing, head, message), "upload the files", repo_id)
    _confirm_commit(api, branch, oid)
    return oid, url


@dataclass(frozen=True)
class Branch:
    """The branch a commit goes to and the files it must hold afterwards."""

    repo_id: str
    revision: str
    files: list[UploadFile]


def _open_revision(api, branch: Branch, overwrite: bool) -> tuple[set[str], str]:
    """The files already on the branch (created from main when missing) and its head commit.

    A branch created here starts from main's head, so it holds main's files: they are listed so that
    the commit deletes those the checkpoint lacks (an earlier LoRA push on main would otherwise leave
    adapter files next to full weights). ``--overwrite`` is only needed for a branch that existed.
    """
    repo = branch.repo_id
    info = call_hub(lambda: _branch_info(api, branch), "open the branch", repo)
    if info is None:
        call_hub(lambda: api.create_branch(repo, branch=branch.revision, exist_ok=True), "create the branch", repo)
        info = call_hub(lambda: api.model_info(repo, revision=branch.revision), "open the branch", repo)
        return _held_files(info), info.sha
    existing = _held_files(info)
    if existing and not overwrite:
        raise RecipeError(
            f"{branch.repo_id} already has a revision '{branch.revision}' holding {len(existing)} files; "
            "push to another --revision, or pass --overwrite (push.overwrite: true) to replace it"
        )
    return existing, info.sha


def _branch_info(api, branch: Branch):
    """The branch's model info, or None when the branch does not exist yet."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return api.model_info(branch.repo_id, revision=branch.revision)
    except RevisionNotFoundError:
        return None


def _held_files(info) -> set[str]:
    """The files at a branch head, less .gitattributes (the Hub keeps it; a push never deletes it)."""
    return {sibling.rfilename for sibling in info.siblings or []} - {".gitattributes"}


def _operations(branch: Branch, existing: set[str]) -> list:
    """Add every planned file; delete what the branch held that this checkpoint does not have."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    adds = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in branch.files]
    stale = sorted(existing - {f.path_in_repo for f in branch.files})
    return adds + [CommitOperationDelete(path_in_repo=path) for path in stale]


def _committer(api, branch: Branch, existing: set[str], head: str, message: str) -> Callable[[], tuple[str, str]]:
    """The commit call for ``call_hub``: each retry first checks whether the last attempt landed.

    A 5xx can arrive after the Hub applied the commit; a retry on the old parent would then be
    refused (412) although the push is there. So before each retry the branch is read again, and a
    head that moved and holds every planned file is taken as this push's commit (the confirmation's test).
    """
    tried = False

    def commit() -> tuple[str, str]:
        nonlocal tried
        if tried:
            info = api.model_info(branch.repo_id, revision=branch.revision)
            if info.sha != head and not _missing_files(branch, info):
                log.info("the last attempt landed as commit %s; not committing again", info.sha)
                return info.sha, f"{api.endpoint}/{branch.repo_id}/commit/{info.sha}"
        tried = True
        done = api.create_commit(
            branch.repo_id,
            _operations(branch, existing),
            commit_message=message,
            revision=branch.revision,
            parent_commit=head,
        )
        return done.oid, done.commit_url

    return commit


def _missing_files(branch: Branch, info) -> set[str]:
    """The planned files a branch head (its model info) does not hold."""
    return {f.path_in_repo for f in branch.files} - {sibling.rfilename for sibling in info.siblings or []}


def _confirm_commit(api, branch: Branch, oid: str) -> None:
    """Read the branch back: its head must be the new commit and hold every pushed file."""
    info = call_hub(
        lambda: api.model_info(branch.repo_id, revision=branch.revision), "confirm the commit", branch.repo_id
    )
    if info.sha != oid:
        raise RecipeError(
            f"the Hub answered the upload, but {branch.repo_id}@{branch.revision} is at commit {str(info.sha)[:12]}, "
            f"not {oid[:12]}; the push is not confirmed, push again"
        )
    missing = _missing_files(branch, info)
    if missing:
        raise RecipeError(
            f"commit {oid[:12]} on {branch.repo_id}@{branch.revision} lacks {sorted(missing)}; "
            "the push is not confirmed, push again"
        )


def call_hub(action: Callable[[], T], what: str, repo_id: str) -> T:
    """Run one Hub call; retry network failures and 5xx/429 answers after ``RETRY_DELAYS``, then fail clearly."""
    attempts = len(RETRY_DELAYS) + 1
    for attempt in range(attempts):
        try:
            return action()
        except RecipeError:
            raise
        except Exception as error:
            cause = _hub_error(error)
            if cause is None:
                raise
            status = _status(cause)
            if status is not None and status not in TRANSIENT_STATUS:
                raise RecipeError(_refusal(cause, status, what, repo_id)) from error
            if attempt == attempts - 1:
                raise RecipeError(
                    f"cannot {what} on the Hub for {repo_id} after {attempts} attempts ({_first_line(cause)}); "
                    "check your network and push again"
                ) from error
            delay = RETRY_DELAYS[attempt]
            log.warning("could not %s (%s); trying again in %g s", what, _first_line(cause), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _hub_error(error: BaseException) -> BaseException | None:
    """The HTTP or network error behind ``error`` (huggingface_hub wraps LFS upload failures), else None.

    Errors a retry cannot fix end the push at once: offline mode, and a local file that cannot be read.
    """
    from huggingface_hub.errors import HTTPError, OfflineModeIsEnabled

    seen = error
    while seen is not None:
        # OfflineModeIsEnabled is a ConnectionError, so it is told apart before the network errors.
        if isinstance(seen, OfflineModeIsEnabled):
            raise RecipeError(OFFLINE) from error
        # HTTPError covers answers with a status and transport failures (refused connections, timeouts);
        # the socket-level OSErrors below are what a connection gives when not wrapped by the client.
        if isinstance(seen, (HTTPError, ConnectionError, TimeoutError)):
            return seen
        if isinstance(seen, OSError):
            name = f"'{seen.filename}'" if seen.filename else "a file of the checkpoint"
            raise RecipeError(
                f"cannot read {name} to upload it ({seen.strerror or _first_line(seen)}); fix the file and push again"
            ) from error
        seen = seen.__cause__
    return None


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) if response is not None else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _refusal(error: BaseException, status: int, what: str, repo_id: str) -> str:
    """A one-line message for an answer the Hub will not change its mind about."""
    server = getattr(error, "server_message", None) or _first_line(error)
    if status == 401:
        return (
            f"the Hub rejected the token ({server}); run `hf auth login` with a valid token "
            "(or fix HF_TOKEN), then push again"
        )
    if status == 403:
        return f"the token may not write to {repo_id} ({server}); use a token with write access to its namespace"
    if status == 404:
        return f"{repo_id} was not found on the Hub while trying to {what} ({server}); check push.repo_id"
    return f"the Hub refused to {what} for {repo_id}: {status} {server}"
