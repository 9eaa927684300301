"""Real protocol servers that play an agency's own system, for the demo, tests and integrators."""
