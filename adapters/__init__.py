"""Transports to agency systems. Nothing here imports `hub`: adapters take and return value objects."""
