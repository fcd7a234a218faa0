"""What a browser gets: the playground (`/`), the dashboard (`/dashboard`) and the API docs.

The pages are plain HTML, CSS and JavaScript shipped in the package (`vidgate/ui/static`,
no build step), served under `/ui/`. The docs pages (`/docs`, `/redoc`) load Swagger UI and
ReDoc from the files the `fastapi-offline` package ships (MIT; Swagger UI 5 reads the OpenAPI
3.1 document FastAPI writes), served under `/ui/docs/`, so they work without internet access.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(str(files("vidgate") / "ui" / "static"))
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))
PAGES = {"/": "index.html", "/dashboard": "dashboard.html"}
# The pages call only their own origin; nothing may frame them (they hold a key).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "media-src 'self' blob:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install(api: FastAPI) -> None:
    """Add the pages and the docs to the app (create it with docs_url=redoc_url=None)."""
    api.mount("/ui/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    api.mount("/ui", StaticFiles(directory=STATIC), name="ui")
    for path, name in PAGES.items():
        api.add_api_route(path, _page(name), methods=["GET"], include_in_schema=False,
                          name=name.removesuffix(".html"))

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=api.openapi_url or "/openapi.json", title=f"{api.title} - Swagger UI",
            swagger_js_url="/ui/docs/swagger-ui-bundle.js",
            swagger_css_url="/ui/docs/swagger-ui.css",
            swagger_favicon_url="/ui/docs/favicon.png")

    @api.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=api.openapi_url or "/openapi.json", title=f"{api.title} - ReDoc",
            redoc_js_url="/ui/docs/redoc.standalone.js",
            redoc_favicon_url="/ui/docs/favicon.png", with_google_fonts=False)


def _page(name: str):
    async def page() -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html", headers=PAGE_HEADERS)
    return page
