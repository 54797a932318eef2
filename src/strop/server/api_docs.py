"""The API description (/openapi.json) and its Swagger UI (/docs), behind the API's own
authentication; the UI's scripts and styles are served from the installed package
(swagger-ui-bundle), never from a CDN."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from strop.server.auth import caller

ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-assets")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(caller)])
    async def openapi(request: Request):
        return request.app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(caller)])
    async def swagger_ui():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="strop API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")
