"""Odin's core: pipelines in the Odin format on an async DAG engine."""

__version__ = "0.1.0"
