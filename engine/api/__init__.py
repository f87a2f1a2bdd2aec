"""The REST API service: `create_app(engine, keys)` is a FastAPI application over one engine."""

from engine.api.app import create_app
from engine.api.keys import ApiKey, KeyStore, KeyStoreError, Role
from engine.api.service import ApiSettings

__all__ = ["ApiKey", "ApiSettings", "KeyStore", "KeyStoreError", "Role", "create_app"]
