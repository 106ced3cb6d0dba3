"""Totals of the assistant's usage (``agent_runs``) for ``status``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def usage_totals(session: Session, hours: float | None = None) -> dict[str, Any]:
    """Answers, tokens, tool calls and estimated cost over all runs (or the last ``hours``)."""
    row = (
        session.execute(
            text(
                """
                SELECT count(*) AS runs,
                       count(*) FILTER (WHERE status = 'error') AS errors,
                       coalesce(sum(input_tokens), 0) AS input_tokens,
                       coalesce(sum(output_tokens), 0) AS output_tokens,
                       coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
                       coalesce(sum(cache_creation_tokens), 0) AS cache_creation_tokens,
                       coalesce(sum(tool_calls), 0) AS tool_calls,
                       coalesce(sum(cost_usd), 0) AS cost_usd,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
                FROM agent_runs
                WHERE CAST(:hours AS float) IS NULL OR created_at > now() - make_interval(secs => :hours * 3600)
                """
            ),
            {"hours": hours},
        )
        .mappings()
        .one()
    )
    totals = dict(row)
    totals["cost_usd"] = float(totals["cost_usd"])
    if totals["p95_duration_ms"] is not None:
        totals["p95_duration_ms"] = round(float(totals["p95_duration_ms"]))
    return totals
