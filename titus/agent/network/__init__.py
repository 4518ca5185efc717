"""Per-task networking: an address from a provider, a link into the container's network
namespace, its security groups as packet filters and its bandwidth as traffic classes.

`provider.py` is the protocol every address provider follows (`local.py`: a configured
pool for one machine); `plumbing.py` makes and removes the links; `firewall.py` and
`bandwidth.py` apply a task's groups and `networkMbps`; `hook.py` is the task hook that
does all of it in a task's life.
"""

from titus.agent.network.provider import AddressProvider, Allocation, NetworkError

__all__ = ["AddressProvider", "Allocation", "NetworkError"]
