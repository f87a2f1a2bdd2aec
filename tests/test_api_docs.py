"""/docs: Swagger UI from the files installed with the engine, never from a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api import Role
from tests.api_support import PaperApi, paper_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaperApi]:
    with paper_api(tmp_path_factory.mktemp("docs")) as paper:
        yield paper


def test_the_docs_page_opens_without_a_key_and_names_no_outside_address(api):
    page = api.client.get("/docs")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?i)https?://|//[a-z0-9-]+\.", page.text)
    assert "/openapi.json" in page.text


def test_every_file_the_docs_page_loads_is_served_here_without_a_key(api):
    page = api.client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert sorted(Path(a).name for a in assets) == [
        "favicon.png",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    ]
    for asset in assets:
        served = api.client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "SwaggerUIBundle" in api.client.get("/docs/assets/swagger-ui-bundle.js").text


def test_the_document_the_page_shows_still_needs_a_key(api):
    assert api.client.get("/openapi.json").status_code == 401
    assert api.client.get("/openapi.json", headers=api.as_role(Role.AUDITOR)).status_code == 200


def test_the_docs_page_is_not_in_the_api_document_and_other_paths_stay_closed(api):
    document = api.client.get("/openapi.json", headers=api.as_role(Role.AUDITOR)).json()

    assert not [path for path in document["paths"] if path.startswith("/docs")]
    assert api.client.get("/docsx").status_code == 401
    assert api.client.get("/docs/other").status_code == 401
