"""The REST API service: `create_app(engine, keys)` is a FastAPI application over one engine."""

from engine.api.app import ApiSettings, create_app
from engine.api.keys import ApiKey, KeyStore, KeyStoreError, Role

__all__ = ["ApiKey", "ApiSettings", "KeyStore", "KeyStoreError", "Role", "create_app"]
