"""Reconciliation, one module per concern: twins (children, status), qdrant, cache, drift."""
