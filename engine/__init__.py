"""The Arbitrex execution engine: takes an approved trade and executes it safely."""

from engine.core.config import ENGINE_VERSION, EngineConfig
from engine.core.ports import BrokerInterface
from engine.engine import ExecutionEngine, create_execution_engine
from engine.schemas import (
    ExecutionConfirmation,
    ExecutionLog,
    ExecutionRejectionReason,
    ExecutionRequest,
    ExecutionStatus,
    MarketSnapshot,
    RPMOutput,
)
from engine.store import ExecutionDatabase, InMemoryExecutionDatabase

__all__ = [
    "ENGINE_VERSION",
    "BrokerInterface",
    "EngineConfig",
    "ExecutionConfirmation",
    "ExecutionDatabase",
    "ExecutionEngine",
    "ExecutionLog",
    "ExecutionRejectionReason",
    "ExecutionRequest",
    "ExecutionStatus",
    "InMemoryExecutionDatabase",
    "MarketSnapshot",
    "RPMOutput",
    "create_execution_engine",
]
