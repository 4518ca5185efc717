"""Each agent its own identity, derived from the platform's secret.

Sharing the platform's secret with every host would make any one host, once taken over,
able to sign orders to every other host (launch anything anywhere, kill anyone's tasks) and
to rewrite or remove the other hosts' registrations. So a host holds only what concerns
it: its **agent secret**, `HMAC(cluster secret, "titus/agent/<id>")`, and the **agents'
role secret**, `HMAC(cluster secret, "titus/agents")`, which every host shares and which
opens no more than the coordination registry's door (list it, add oneself, read the
others' health). The masters and the API hold the cluster secret and derive any agent's
secret when they need it, so there is no table of per-host keys to distribute or rotate
one by one: `titus agent-credentials <id>` prints a host's credentials for its
`agent_credentials_file`.

What each secret is used for:
- the agent secret verifies the calls the master and the API make to that agent
  (titus/model/signing.py), signs the agent's registration, and is the password of the
  agent's own ZooKeeper identity `agent.<id>`, the only one that may change its node;
- the role secret is the password of the ZooKeeper identity `titus-agents`, which may list
  the registry, create nodes in it and read them, and nothing else: no host can remove or
  rewrite another host's registration.

Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

#: ZooKeeper digest user of one agent (`agent.<id>`) and of the agents' shared role.
AGENT_USER_PREFIX = "agent."
AGENTS_ROLE_USER = "titus-agents"
#: The largest credentials document anyone should hand us (three short fields).
MAX_CREDENTIALS_BYTES = 4_096


def _derive(cluster_secret: bytes, label: str) -> bytes:
    return hmac.new(cluster_secret, label.encode(), hashlib.sha256).hexdigest().encode()


def agent_secret(cluster_secret: bytes, agent_id: str) -> bytes:
    """The secret of agent `agent_id` (64 hex characters, printable, so that it can be a
    ZooKeeper digest password too)."""
    return _derive(cluster_secret, f"titus/agent/{agent_id}")


def agents_role_secret(cluster_secret: bytes) -> bytes:
    return _derive(cluster_secret, "titus/agents")


def sign_registration(secret: bytes, payload: dict[str, Any]) -> str:
    """The MAC of an agent's registration (its AgentInfo as JSON, keys sorted): the masters
    trust a registered address only when the agent it names signed it."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def registration_signed_by(secret: bytes, payload: dict[str, Any], signature: str) -> bool:
    return hmac.compare_digest(sign_registration(secret, payload), signature)


@dataclass(frozen=True)
class AgentCredentials:
    """What one host needs to be an agent of the platform, and nothing more."""

    agent_id: str
    secret: bytes
    role_secret: bytes

    @classmethod
    def derive(cls, cluster_secret: bytes, agent_id: str) -> AgentCredentials:
        return cls(
            agent_id, agent_secret(cluster_secret, agent_id), agents_role_secret(cluster_secret)
        )

    @property
    def zk_user(self) -> str:
        return AGENT_USER_PREFIX + self.agent_id

    def zk_auth(self) -> list[tuple[str, str]]:
        """kazoo `auth_data`: the agent's own identity and the agents' role."""
        return [
            ("digest", f"{self.zk_user}:{self.secret.decode()}"),
            ("digest", f"{AGENTS_ROLE_USER}:{self.role_secret.decode()}"),
        ]

    def to_text(self) -> str:
        return json.dumps(
            {
                "agentId": self.agent_id,
                "secret": self.secret.decode(),
                "roleSecret": self.role_secret.decode(),
            }
        )

    @classmethod
    def parse(cls, text: str, where: str = "agent credentials") -> AgentCredentials:
        """Read what `to_text` wrote; anything else is refused naming what is wrong."""
        if len(text.encode()) > MAX_CREDENTIALS_BYTES:
            raise ValueError(f"{where}: larger than {MAX_CREDENTIALS_BYTES} bytes")
        try:
            doc = json.loads(text)
        except ValueError:
            raise ValueError(
                f"{where}: not JSON (write it with `titus agent-credentials`)"
            ) from None
        if not isinstance(doc, dict):
            raise ValueError(f"{where}: must be a JSON object")
        fields = {}
        for name in ("agentId", "secret", "roleSecret"):
            value = doc.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}: {name} is missing or not a string")
            fields[name] = value
        for name in ("secret", "roleSecret"):
            if len(fields[name]) < 32 or not fields[name].isalnum():
                raise ValueError(f"{where}: {name} must be at least 32 letters or digits")
        return cls(fields["agentId"], fields["secret"].encode(), fields["roleSecret"].encode())
