"""A local stand-in for the Hugging Face Hub's HTTP API, on 127.0.0.1 (huggingface_hub talks to it through
HF_ENDPOINT or its `constants.ENDPOINT`).

`FakeHub(status, code)` answers every request with that status and X-Error-Code (how the Hub refuses); `FakeHub()`
accepts uploads the way `HfApi.create_repo` + `create_commit` make them (repo creation, README metadata check,
preupload, one NDJSON commit with the files inline) and keeps what it received in `repos`.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from dataclasses import dataclass, field


@dataclass
class Repo:
    visibility: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)  # commit messages, oldest first


class FakeHub:
    def __init__(self, status: int | None = None, code: str | None = None):
        self.repos: dict[str, Repo] = {}
        self.tokens: set[str] = set()  # the bearer tokens requests carried
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict | None = None, error: str | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if error:
                    self.send_header("X-Error-Code", error)
                    self.send_header("X-Error-Message", "test")
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refuse(self) -> None:
                if self.command == "POST":
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(status, None, code)

            def do_GET(self):
                self._refuse() if status else self._send(404, {"error": "not found"}, "EntryNotFound")

            do_HEAD = do_GET

            def do_POST(self):
                if status:
                    return self._refuse()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                hub.tokens.add(auth.removeprefix("Bearer "))
                path = self.path.split("?", 1)[0]
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo_id = f"{req['organization']}/{req['name']}"
                    url = f"{hub.url}/{repo_id}"
                    if repo_id in hub.repos:  # as the Hub answers: 409, with the repo's url
                        return self._send(409, {"error": "You already created this model repo", "url": url})
                    hub.repos[repo_id] = Repo(req.get("visibility"))
                    return self._send(200, {"url": url})
                if path == "/api/validate-yaml":
                    return self._send(200, {"errors": [], "warnings": []})
                parts = path.split("/")  # /api/models/OWNER/NAME/(preupload|commit)/REVISION
                repo = hub.repos.get("/".join(parts[3:5])) if len(parts) == 7 and parts[2] == "models" else None
                if repo is None:
                    return self._send(404, {"error": "Repository not found"}, "RepoNotFound")
                if parts[5] == "preupload":
                    files = json.loads(body)["files"]
                    return self._send(
                        200,
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                    )
                if parts[5] == "commit":
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            repo.commits.append(item["value"]["summary"])
                        elif item["key"] == "file":
                            repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    url = f"{hub.url}/{'/'.join(parts[3:5])}/commit/{len(repo.commits):040d}"
                    return self._send(200, {"commitUrl": url, "commitOid": f"{len(repo.commits):040d}"})
                return self._send(404, {"error": "not found"})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
