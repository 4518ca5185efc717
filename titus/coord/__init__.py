"""Coordination: leader election, the agent registry and wake-ups."""
