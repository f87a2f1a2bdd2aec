"""GET /docs: the API document in Swagger UI, served from files installed with the engine.

No CDN: the Swagger UI bundle and stylesheet are those the `fastapi-offline` package ships
(Swagger UI 5, which reads OpenAPI 3.1), served under /docs/assets. A trading host is often
cut off from the internet, and a page that loads code from a third party is a page that
third party controls.

The page and its assets are open (they are the same for everyone and reveal nothing of this
API); the document itself, /openapi.json, still needs a key. So the page asks for one, keeps
it in the page's memory only (never in storage, never in the URL), and sends it with the
request for the document and with every "Try it out" call.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
_ASSETS = Path(fastapi_offline.__file__).parent / "static"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API document</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<style>
  #key-form {{ font-family: sans-serif; margin: 1em 2em; }}
  #key-form input {{ width: 32em; }}
</style>
</head>
<body>
<form id="key-form">
  <label>API key (any role) to read the document:
    <input id="key" type="password" autocomplete="off" placeholder="axk_...">
  </label>
  <button type="submit">Load</button>
</form>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
  // The key lives in this closure only: not in storage, not in the URL.
  document.getElementById("key-form").addEventListener("submit", function (event) {{
    event.preventDefault();
    const key = document.getElementById("key").value.trim();
    SwaggerUIBundle({{
      url: "{openapi}",
      dom_id: "#swagger-ui",
      validatorUrl: null,  // else the page asks validator.swagger.io about the document
      requestInterceptor: function (request) {{
        if (key && !request.headers.Authorization) {{
          request.headers.Authorization = "Bearer " + key;
        }}
        return request;
      }},
    }});
  }});
</script>
</body>
</html>
"""


def add_docs(app: FastAPI) -> None:
    """Serve the page at /docs and Swagger UI's files under /docs/assets."""
    page = _PAGE.format(title=app.title, assets=ASSETS_PATH, openapi=app.openapi_url)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS), name="docs-assets")
