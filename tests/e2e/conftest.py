from tests.support.platform import platform  # noqa: F401
