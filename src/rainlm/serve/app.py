"""``create_app``: the FastAPI application of ``rain serve`` (state lives on ``app.state``:
``settings``, ``engine``, ``store``, ``refusals``).

The parts: ``routes.py`` (the OpenAI-compatible routes, /health, /openapi.json),
``review_routes.py`` (traces and the review page), ``guards.py`` (Host allow-list,
JSON-only posts, page security headers, the API key), ``http_errors.py`` (every error in
OpenAI's format, ``errors.py``), ``engine.py`` (admission, the search workers, the
audit records), ``streaming.py`` and ``responses.py`` (what is sent).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

# This module is imported only to serve: the web framework is imported at the top so
# FastAPI can resolve the route signatures' annotations.
from fastapi import FastAPI

from rainlm.serve import review_routes, routes
from rainlm.serve.engine import Engine
from rainlm.serve.guards import install_guards
from rainlm.serve.http_errors import install_error_handlers
from rainlm.serve.refusals import Refusals
from rainlm.serve.settings import ServerSettings

__all__ = ["create_app"]


def create_app(settings: ServerSettings, *, backend: Any = None, store: Any = None,
               services: Any = None, on_ready: Callable[[], None] | None = None) -> Any:
    """Build the app. The model loads on the worker thread at startup (``/health`` says
    "loading" and requests get 503 until it is ready) unless ``backend`` is given.

    ``store``: a ``TraceStore`` (default: ``TraceStore(settings.db_path)``).
    ``services``: a ``rainlm.services.Services`` (how backend and embedder load).
    ``on_ready``: called (on the worker thread) once the model is loaded.
    """
    from rainlm.services import Services
    from rainlm.trace.store import TraceStore

    owns_store = store is None
    if store is None:
        store = TraceStore(settings.db_path)
    engine = Engine(settings, store)
    services = services if services is not None else Services()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start(services, backend, on_ready)
        try:
            yield
        finally:  # the running searches' records are written before the store closes
            engine.stop(settings.shutdown_timeout_s)
            if owns_store:
                store.close()

    app = FastAPI(title="rainlm", summary="OpenAI-compatible RAIN server", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.settings = settings
    app.state.store = store
    app.state.refusals = Refusals()
    install_error_handlers(app)
    install_guards(app, settings, app.state.refusals)
    app.include_router(routes.router)
    app.include_router(review_routes.router)
    return app
