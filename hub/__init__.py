"""Loket's hub: the canonical model, intake, routing, lifecycle, outbox and HTTP API."""
