"""The one error the cost model raises for what a user gave it: a message of one line."""

from __future__ import annotations

INSTALL_HINT = "the cost model needs scikit-learn: pip install 'arbitrex-execution[model]'"


class CostModelError(ValueError):
    """Bad data, a bad or foreign model file, or scikit-learn missing."""
