"""A local stand-in for the Hugging Face Hub: the part of its HTTP API that ``huggingface_hub`` uses to push.

It speaks what huggingface_hub 2.4 calls for ``whoami``, ``create_repo``, ``model_info`` (with a
revision), ``create_branch`` and ``create_commit``: ``/api/validate-yaml``, the preupload call that
decides regular vs LFS, the git-LFS batch API, single-part uploads with their verify call, and the
NDJSON commit. Commits are kept per branch, so a test can read back exactly what a push left on the
server. ``fail`` injects errors into the next calls of one endpoint, ``fail_after`` lets the next
calls do their work and then answers an error (the answer lost on the way back), and
``confirm_commits=False`` makes the commit call answer success without storing anything (a server
that lies).

Xet uploads are not spoken: tests set ``huggingface_hub.constants.HF_HUB_DISABLE_XET`` (the
``HF_HUB_DISABLE_XET`` switch) so large files take the plain LFS path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    private: bool
    branches: dict[str, list[Commit]] = field(default_factory=dict)

    def head(self, branch: str) -> Commit:
        return self.branches[branch][-1]


def _oid(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 (port 0) that stores repos, branches, commits and LFS objects."""

    def __init__(self, token: str = "hf_test_token", user: str = "someone", lfs_threshold: int = 10 * 1024 * 1024):
        self.token, self.user, self.lfs_threshold = token, user, lfs_threshold
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []  # (method, endpoint kind), in order
        self.failures: dict[str, list[int]] = {}  # endpoint kind -> statuses to answer with next
        self.failures_after: dict[str, list[int]] = {}  # endpoint kind -> statuses to answer after the work
        self.confirm_commits = True
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, kind: str, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` calls of one endpoint kind (see ``calls``) with ``status``."""
        self.failures.setdefault(kind, []).extend([status] * times)

    def fail_after(self, kind: str, status: int = 500, times: int = 1) -> None:
        """Let the next ``times`` calls of one endpoint kind do their work, then answer ``status``."""
        self.failures_after.setdefault(kind, []).extend([status] * times)

    def calls(self, kind: str) -> int:
        """How many requests of one kind arrived: whoami, create, info, branch, validate, preupload,
        lfs-batch, lfs-upload, lfs-verify, commit."""
        return sum(1 for _, seen in self.requests if seen == kind)

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        """The files at the head of a branch."""
        return dict(self.repos[repo_id].head(branch).files)

    def commits(self, repo_id: str, branch: str = "main") -> list[Commit]:
        return list(self.repos[repo_id].branches.get(branch, []))

    def add_repo(self, repo_id: str, files: dict[str, bytes] | None = None, branch: str = "main") -> None:
        """Seed a repo (and a branch holding ``files``), as if an earlier push had made it."""
        repo = self.repos.setdefault(repo_id, Repo(private=True))
        repo.branches.setdefault("main", [Commit(_oid(repo_id, "initial"), "initial commit", _initial_files())])
        if files is not None:
            parent = repo.branches.get(branch, repo.branches["main"])[-1]
            commit = Commit(_oid(repo_id, branch, "seed"), "seed", {**parent.files, **files})
            repo.branches.setdefault(branch, list(repo.branches["main"])).append(commit)


def _initial_files() -> dict[str, bytes]:
    return {".gitattributes": GITATTRIBUTES}


class _Answer(Exception):
    """Raised inside a route to answer with an error status."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: str):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


ROUTES = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate"),
    ("GET", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$"), "info"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>[^/]+)$"), "branch"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$"), "lfs-batch"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs-upload"),
    ("POST", re.compile(r"^/lfs-verify$"), "lfs-verify"),
]


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass  # keep test output clean

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def do_PUT(self):
            self._dispatch("PUT")

        def _dispatch(self, method: str) -> None:
            path = urlparse(self.path).path
            body = self._read_body()
            found = [
                (kind, match) for verb, pattern, kind in ROUTES if verb == method and (match := pattern.match(path))
            ]
            if not found:
                self._send(404, {"error": f"fake hub: no route for {method} {path}"})
                return
            kind, match = found[0]
            with hub._lock:
                hub.requests.append((method, kind))
                queued = hub.failures.get(kind)
                status = queued.pop(0) if queued else None
            if status is not None:
                self._send(status, {"error": f"injected failure of {kind}"})
                return
            params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
            try:
                if kind != "whoami" and kind not in ("lfs-upload", "lfs-verify"):
                    self._check_token()
                with hub._lock:
                    answer = getattr(self, "_" + kind.replace("-", "_"))(body, **params)
                    queued = hub.failures_after.get(kind)
                    status = queued.pop(0) if queued else None
                if status is not None:
                    raise _Answer(status, f"injected failure of {kind}, after it was done")
            except _Answer as error:
                headers = {"X-Error-Code": error.code} if error.code else {}
                self._send(error.status, {"error": error.message, **error.extra}, headers)
                return
            self._send(200, answer)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _check_token(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                raise _Answer(401, "Invalid credentials in Authorization header")

        def _repo(self, repo_id: str) -> Repo:
            if repo_id not in hub.repos:
                raise _Answer(404, "Repository not found", "RepoNotFound")
            return hub.repos[repo_id]

        def _commits_of(self, repo: Repo, revision: str) -> list[Commit]:
            if revision not in repo.branches:
                raise _Answer(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return repo.branches[revision]

        def _whoami(self, body: bytes) -> dict:
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                raise _Answer(401, "Invalid credentials in Authorization header")
            return {"type": "user", "name": hub.user, "orgs": [], "auth": {"accessToken": {"role": "write"}}}

        def _create(self, body: bytes) -> dict:
            payload = json.loads(body)
            repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
            if repo_id in hub.repos:
                raise _Answer(409, "You already created this model repo", url=f"{hub.url}/{repo_id}")
            hub.repos[repo_id] = Repo(private=payload.get("visibility", "private") == "private")
            hub.repos[repo_id].branches["main"] = [Commit(_oid(repo_id, "initial"), "initial commit", _initial_files())]
            return {"url": f"{hub.url}/{repo_id}", "name": repo_id}

        def _validate(self, body: bytes) -> dict:
            content = json.loads(body)["content"]
            if content.startswith("---"):
                try:
                    yaml.safe_load(content.split("---")[1])
                except yaml.YAMLError as error:
                    raise _Answer(400, f"invalid YAML metadata: {error}") from None
            return {"errors": [], "warnings": []}

        def _info(self, body: bytes, repo: str, rev: str = "main") -> dict:
            head = self._commits_of(self._repo(repo), rev)[-1]
            siblings = [{"rfilename": name} for name in sorted(head.files)]
            return {"id": repo, "sha": head.oid, "private": hub.repos[repo].private, "siblings": siblings}

        def _branch(self, body: bytes, repo: str, rev: str) -> dict:
            record = self._repo(repo)
            if rev in record.branches:
                raise _Answer(409, f"Reference refs/heads/{rev} already exists")
            start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
            record.branches[rev] = [self._commits_of(record, start)[-1]]
            return {}

        def _preupload(self, body: bytes, repo: str, rev: str) -> dict:
            self._commits_of(self._repo(repo), rev)
            files = []
            for entry in json.loads(body)["files"]:
                lfs = entry["size"] >= hub.lfs_threshold or entry["path"].endswith(LFS_SUFFIXES)
                files.append({"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
            return {"files": files}

        def _lfs_batch(self, body: bytes, repo: str) -> dict:
            self._repo(repo.removesuffix(".git"))
            objects = []
            for item in json.loads(body)["objects"]:
                entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
                if item["oid"] not in hub.lfs_objects:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.url}/lfs-upload/{item['oid']}", "header": {}},
                        "verify": {"href": f"{hub.url}/lfs-verify", "header": {}},
                    }
                objects.append(entry)
            return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

        def _lfs_upload(self, body: bytes, oid: str) -> dict:
            if hashlib.sha256(body).hexdigest() != oid:
                raise _Answer(400, "uploaded content does not match its sha256")
            hub.lfs_objects[oid] = body
            return {}

        def _lfs_verify(self, body: bytes) -> dict:
            if json.loads(body)["oid"] not in hub.lfs_objects:
                raise _Answer(404, "object not uploaded")
            return {}

        def _commit(self, body: bytes, repo: str, rev: str) -> dict:
            commits = self._commits_of(self._repo(repo), rev)
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            parent = header.get("parentCommit")
            if parent and parent != commits[-1].oid:
                raise _Answer(412, "A commit has happened since. Please refresh and try again.")
            files = dict(commits[-1].files)
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] == "lfsFile":
                    if value["oid"] not in hub.lfs_objects:
                        raise _Answer(422, f"LFS object of {value['path']} was never uploaded")
                    files[value["path"]] = hub.lfs_objects[value["oid"]]
                elif line["key"] == "deletedFile":
                    files.pop(value["path"], None)
            commit = Commit(_oid(repo, rev, len(commits), sorted(files)), header["summary"], files)
            if hub.confirm_commits:
                commits.append(commit)
            return {"commitUrl": f"{hub.url}/{repo}/commit/{commit.oid}", "commitOid": commit.oid}

    return Handler
