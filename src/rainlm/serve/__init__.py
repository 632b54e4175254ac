"""``rain serve``: an OpenAI-compatible HTTP server answering with RAIN.

``create_app(settings)`` (in ``rainlm.serve.app``) builds the FastAPI application;
``rain serve`` runs it with uvicorn. Importing this package imports no web framework.
"""
