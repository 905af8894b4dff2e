"""Admin changelist pages that do not count a million rows to show a hundred."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

# Counting this many rows is cheap (an index walk of a few milliseconds);
# past it a filtered list says "10,000" and its pages stop there.
COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator[Any]):
    """Counts that stay cheap at a million rows.

    The whole list, on PostgreSQL: the planner's estimate (`EXPLAIN`, no
    rows read; as good as the table's statistics). A filtered or searched
    list: counted exactly up to COUNT_CAP rows, since the planner's guess
    for a filter can be far off and the admin builds its page links from the
    count. Other databases count."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        query, db = queryset.query, queryset.db
        if connections[db].vendor != "postgresql":
            return super().count
        # A filter of the model's default manager (tracks: only ready ones)
        # is the whole list to the admin; the planner estimates it as well.
        if query.where != queryset.model._default_manager.all().query.where:
            return min(queryset[: COUNT_CAP + 1].count(), COUNT_CAP)
        sql, params = query.sql_with_params()
        with connections[db].cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            (plan,) = cursor.fetchone()
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        return super().count if estimate < COUNT_CAP else estimate
