"""What every role of the Cassandra store shares: the session and the epoch fence.

Each role is a mixin over `Part` (one module per role); `CassandraJobStore` composes them
and sets these attributes once, when it connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from titus.store.cassandra.session import CassandraSession

if TYPE_CHECKING:
    from titus.store.cassandra.fencing import Fence


class Part:
    _db: CassandraSession
    _fence: Fence
