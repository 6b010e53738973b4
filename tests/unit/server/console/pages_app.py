"""An in-process console over a small project: a runtime, the app around it, keys and sign-in."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from keel.contract import parse_contract
from keel.project import Project
from keel.runtime import Runtime
from keel.server import create_app
from keel.settings import Settings
from tests.support.database import project_database

CONTRACT = """
sources:
  - {name: handbook, path: handbook, owner: people@acme.example, groups: [everyone], refresh: 1d}
  - {name: finance, path: finance, owner: cfo@acme.example, groups: [finance], refresh: 6h}
  - {name: vault, path: vault, owner: sec@other.example, groups: [security], tenants: [other]}
apps:
  - name: default
"""

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True, kw_only=True)
class Console:
    """The app, its runtime, and one API key per role (tenant ``acme``, plus a reviewer of ``other``)."""

    runtime: Runtime
    root: Path
    keys: dict[str, str]

    def client(self, who: str | None = None) -> TestClient:
        """A browser, signed in as ``who`` (``reviewer``, ``admin``, ``user``, ``other``) unless ``None``."""
        app = create_app(Settings(project=self.root))
        app.state.runtime = self.runtime  # lifespan not run: pages need nothing warmed up
        client = TestClient(app, raise_server_exceptions=True)
        if who is not None:
            signed = client.post("/console/login", data={"key": self.keys[who]}, follow_redirects=False)
            assert signed.status_code == 303, signed.text
        return client


@contextmanager
def console(tmp_path: Path) -> Iterator[Console]:
    """A console over an empty project under :data:`CONTRACT` (callers add the data they need)."""
    project = Project(
        root=tmp_path,
        data_dir=tmp_path / ".keel",
        contract=parse_contract(CONTRACT),
        **project_database(tmp_path / ".keel"),
    )
    runtime = Runtime(project)
    roles = {"reviewer": ["reviewer"], "admin": ["admin"], "user": ["user"]}
    keys = {
        who: runtime.keys.create(principal_id=who, tenant="acme", groups=[], roles=r).secret for who, r in roles.items()
    }
    keys["other"] = runtime.keys.create(principal_id="olga", tenant="other", groups=[], roles=["reviewer"]).secret
    try:
        yield Console(runtime=runtime, root=tmp_path, keys=keys)
    finally:
        asyncio.run(runtime.close())


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF.search(html)
    assert match, "no form with a CSRF token on the page"
    return match.group(1)


def sent_to_sign_in(response: httpx.Response) -> bool:
    """Whether ``response`` is the redirect to the sign-in page."""
    return response.status_code == 303 and response.headers.get("location", "").startswith("/console/login")
