"""The audit store: append-only execution events and the views derived from them."""

from engine.store.base import (
    DuplicateExecution,
    ExecutionDatabase,
    IdempotencyConflict,
    StoreUnavailable,
)
from engine.store.memory import InMemoryExecutionDatabase

__all__ = [
    "DuplicateExecution",
    "ExecutionDatabase",
    "IdempotencyConflict",
    "InMemoryExecutionDatabase",
    "StoreUnavailable",
]
