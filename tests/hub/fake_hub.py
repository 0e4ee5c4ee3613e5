"""A tiny in-memory stand-in for the Hugging Face Hub HTTP API, served on 127.0.0.1 for offline tests.

It implements just the endpoints that huggingface_hub's create_repo, validate-yaml, create_branch, upload_folder
(preupload + ndjson commit, all files as regular blobs), model_info, list-tree (snapshot_download) and hf_hub_download
call, so the real client code runs end to end without any network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class FakeHub:
    def __init__(self) -> None:
        self.branches: dict[str, dict[str, str]] = {}  # repo_id -> branch -> commit sha
        self.commits: dict[str, dict[str, bytes]] = {}  # sha -> {path: content}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def resolve(self, repo_id: str, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.branches.get(repo_id, {}).get(revision)

    def commit(self, repo_id: str, branch: str, files: dict[str, bytes], deleted: set[str]) -> str:
        with self.lock:
            parent = self.resolve(repo_id, branch)
            tree = dict(self.commits.get(parent, {}))
            tree.update(files)
            for path in deleted:
                tree.pop(path, None)
            sha = hashlib.sha1(json.dumps([parent, sorted((p, hashlib.sha1(c).hexdigest()) for p, c in tree.items())]).encode()).hexdigest()
            self.commits[sha] = tree
            self.branches.setdefault(repo_id, {})[branch] = sha
            return sha

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, payload: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not head:
                    self.wfile.write(payload)

            def _json(self, status: int, payload: object, headers: dict | None = None) -> None:
                self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

            def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
                self._send(status, json.dumps({"error": message}).encode(), {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}, head)

            def do_POST(self) -> None:
                path = unquote(urlparse(self.path).path)
                body = self._body()
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
                    if repo_id in hub.branches:  # the real Hub answers 409 with the existing repo's url
                        return self._json(409, {"error": "You already created this model repo", "url": f"{hub.endpoint}/{repo_id}"})
                    hub.branches[repo_id] = {}
                    hub.commit(repo_id, "main", {".gitattributes": b"*.safetensors filter=lfs\n"}, set())
                    return self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
                if path == "/api/validate-yaml":
                    # The real Hub validates README metadata; parse it as YAML so a broken card still fails.
                    import yaml

                    content = json.loads(body)["content"]
                    if content.startswith("---"):
                        yaml.safe_load(content.split("---")[1])
                    return self._json(200, {"errors": [], "warnings": []})
                match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
                if not match:
                    return self._error(404, "NotFound", f"no route for POST {path}")
                repo_id, action, revision = match.groups()
                if repo_id not in hub.branches:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if action == "branch":
                    hub.branches[repo_id].setdefault(revision, hub.branches[repo_id]["main"])
                    return self._json(200, {})
                files: dict[str, bytes] = {}
                deleted: set[str] = set()
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        deleted.add(item["value"]["path"])
                    elif item["key"] not in ("header",):
                        return self._error(400, "BadRequest", f"unsupported commit operation {item['key']}")
                sha = hub.commit(repo_id, revision, files, deleted)
                return self._json(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha})

            def do_HEAD(self) -> None:
                self._get(head=True)

            def do_GET(self) -> None:
                self._get(head=False)

            def _get(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
                if match:
                    repo_id, revision = match.group(1), match.group(2) or "main"
                    sha = hub.resolve(repo_id, revision) if repo_id in hub.branches else None
                    if sha is None:
                        return self._error(404, "RepoNotFound" if repo_id not in hub.branches else "RevisionNotFound", f"{repo_id}@{revision} not found", head)
                    tree = hub.commits[sha]
                    return self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                                            "siblings": [{"rfilename": name, "size": len(tree[name])} for name in sorted(tree)]})
                match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)/?", path)
                if match:
                    repo_id, revision = match.groups()
                    sha = hub.resolve(repo_id, revision) if repo_id in hub.branches else None
                    if sha is None:
                        return self._error(404, "RevisionNotFound", f"{repo_id}@{revision} not found", head)
                    tree = hub.commits[sha]
                    return self._json(200, [{"type": "file", "path": name, "size": len(tree[name]), "oid": hashlib.sha1(tree[name]).hexdigest()} for name in sorted(tree)])
                match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if not match:
                    return self._error(404, "NotFound", f"no route for GET {path}", head)
                repo_id, revision, filename = match.groups()
                if repo_id not in hub.branches:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head)
                sha = hub.resolve(repo_id, revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Revision {revision} not found", head)
                content = hub.commits[sha].get(filename)
                if content is None:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist at {revision}", head)
                etag = '"' + hashlib.sha256(content).hexdigest() + '"'
                self._send(200, content, {"X-Repo-Commit": sha, "ETag": etag, "Content-Type": "application/octet-stream"}, head)

        return Handler
