"""Admin changelist pages that do not count a million rows to show a hundred."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections

# Below this many rows (as PostgreSQL estimates them) counting is cheap, and
# an exact figure is worth it.
EXACT_COUNT_BELOW = 10_000


class EstimatedCountPaginator(Paginator[Any]):
    """On PostgreSQL, a large result's count is the planner's estimate
    (`EXPLAIN`, no rows read); small ones, and other databases, count."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        db = getattr(queryset, "db", "default")
        if query is None or connections[db].vendor != "postgresql":
            return super().count
        sql, params = query.sql_with_params()
        with connections[db].cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            (plan,) = cursor.fetchone()
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        return super().count if estimate < EXACT_COUNT_BELOW else estimate
