"""The audit store: append-only execution events and the views derived from them."""

from engine.store.base import (
    DuplicateExecution,
    ExecutionDatabase,
    ExecutionTakenOver,
    IdempotencyConflict,
    StoreUnavailable,
)
from engine.store.chain import VerificationResult, verify_audit_chain
from engine.store.export import export_audit_trail_to
from engine.store.memory import InMemoryExecutionDatabase
from engine.store.quotes import DEFAULT_QUOTE_RETENTION_SECONDS, QuoteSample
from engine.store.sql import SQLExecutionDatabase
from engine.store.urls import open_database
from engine.store.verify import AuditVerification, verify_audit_store

__all__ = [
    "DEFAULT_QUOTE_RETENTION_SECONDS",
    "AuditVerification",
    "DuplicateExecution",
    "ExecutionDatabase",
    "ExecutionTakenOver",
    "IdempotencyConflict",
    "InMemoryExecutionDatabase",
    "QuoteSample",
    "SQLExecutionDatabase",
    "StoreUnavailable",
    "VerificationResult",
    "export_audit_trail_to",
    "open_database",
    "verify_audit_chain",
    "verify_audit_store",
]
