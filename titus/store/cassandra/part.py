"""What every role of the Cassandra store shares: the session, the epoch fence and the
grouped batches of creates.

Each role is a mixin over `Part` (one module per role); `CassandraJobStore` composes them
and sets these attributes once, when it connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from titus.store.cassandra.session import CassandraSession

if TYPE_CHECKING:
    from titus.store.cassandra.fencing import Fence
    from titus.store.cassandra.groups import BatchGroups


class Part:
    _db: CassandraSession
    _fence: Fence
    _groups: BatchGroups
