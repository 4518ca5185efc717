"""titus: a container management platform."""
