"""The titus command."""
