"""One settings object for every component, from `TITUS_*` environment variables and an
optional file named by `TITUS_CONFIG` (JSON or `KEY=value` lines).

Every field here is documented in README.md with its default. Components take the
settings object, never read the environment themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TITUS_", extra="ignore")

    # where things live
    data_dir: str = Field("/var/lib/titus", description="State directory (store, logs).")
    store: str = Field("", description="Store URL; empty means sqlite:///<data_dir>/titus.db.")

    # api
    api_host: str = "127.0.0.1"
    api_port: int = 7001
    max_body_bytes: int = 1_048_576

    # master
    master_loop_interval_sec: float = 0.5
    master_id: str = ""
    agent_poll_wait_sec: float = 10.0
    agent_lost_after_sec: float = 30.0
    kill_grace_sec: float = 10.0

    # agent
    agent_id: str = ""
    agent_host: str = "127.0.0.1"
    agent_port: int = 7101
    agent_zone: str = "zone-a"
    agent_region: str = "local"
    agent_instance_type: str = "local.large"
    agent_cpu: float = 0.0  # 0: all cores of the machine
    agent_memory_mb: int = 0  # 0: 80% of the machine's memory
    agent_disk_mb: int = 100_000
    agent_network_mbps: int = 10_000
    docker_url: str = Field("", description="Docker endpoint; empty means the environment's.")
    log_dir: str = ""  # empty: <data_dir>/logs
    finished_retention_sec: float = 3600.0

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{Path(self.data_dir) / 'titus.db'}"

    @property
    def logs_path(self) -> Path:
        return Path(self.log_dir or Path(self.data_dir) / "logs")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the file in TITUS_CONFIG (if any), then the environment, then overrides."""
    file_values: dict[str, Any] = {}
    config = os.environ.get("TITUS_CONFIG")
    if config:
        text = Path(config).read_text()
        if text.lstrip().startswith("{"):
            file_values = json.loads(text)
        else:
            for line in text.splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    file_values[key.strip().lower().removeprefix("titus_")] = value.strip()
    # precedence: explicit overrides > environment > file > defaults
    values = {k: v for k, v in file_values.items() if f"TITUS_{k.upper()}" not in os.environ}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
