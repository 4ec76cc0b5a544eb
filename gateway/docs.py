"""The documentation page, served by the gateway from the swagger-ui-bundle package's own files, so that it
works offline and under a Content-Security-Policy that allows scripts and styles from the gateway only."""

from __future__ import annotations

import functools
from pathlib import Path

from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

# Swagger UI sets style attributes as it renders, so styles need 'unsafe-inline'; scripts do not.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
# No inline script: the page's one script of its own is a file too.
_INIT = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "docs/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Äldre direkt API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
""".encode()


def docs_page() -> bytes:
    return _PAGE


def docs_file(name: str) -> tuple[bytes, str] | None:
    """A file of the page by name; None for any name not on the list."""
    if name == "init.js":
        return _INIT, "text/javascript"
    media_type = _FILES.get(name)
    if media_type is None:
        return None
    return _read(name), media_type


@functools.cache
def _read(name: str) -> bytes:
    """A file of the bundle, read once (only listed names get here)."""
    return (Path(str(swagger_ui_path)) / name).read_bytes()
