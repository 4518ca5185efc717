"""The host daemon and executor."""
