"""Which images adoption hardens as a server family it knows: the family's own image under any
registry or edition name, never a tool merely named after it."""

from __future__ import annotations

import pytest

from hotmode.adopt.images import known


@pytest.mark.parametrize(
    ("image", "family"),
    [
        ("postgres:16-alpine", "postgres"),
        ("bitnami/postgresql:16", "postgres"),
        ("bitnami/redis:7", "redis"),
        ("redis/redis-stack-server:latest", "redis"),
        ("mysql/mysql-server:8.0", "mysql"),
        ("bitnami/mongodb:7", "mongo"),
        # Tools named after a family: admin UIs, exporters. Kept as they were.
        ("rediscommander/redis-commander:latest", None),
        ("mongo-express:1", None),
        ("prometheuscommunity/postgres-exporter", None),
        ("dpage/pgadmin4:9.4", None),
    ],
)
def test_a_family_is_its_server_not_a_tool_named_after_it(image: str, family: str | None) -> None:
    found = known(image)
    assert (found.family if found else None) == family
