"""serve --workers N shares the CRM limits out: together the workers never exceed the configured ones."""

from __future__ import annotations

import pytest

from connector.sync.crm.ratelimit import parse_rate
from connector.sync.settings import GhlSettings
from connector.workers import crm_share, share


@pytest.mark.parametrize(
    ("total", "workers", "parts"),
    [
        (100, 1, [100]),
        (100, 2, [50, 50]),
        (100, 3, [34, 33, 33]),
        (8, 3, [3, 3, 2]),
        (1, 2, [1, 1]),  # never 0: a worker with no budget would never sync
    ],
)
def test_shares(total, workers, parts):
    assert [share(total, i, workers) for i in range(workers)] == parts


def test_the_workers_together_stay_within_the_configured_limits():
    settings = GhlSettings(rate_limit="100/10s", daily_limit=200_001, concurrency=8)
    shares = [crm_share(settings, i, 3) for i in range(3)]
    rates = [parse_rate(s.rate_limit) for s in shares]
    assert sum(count for count, _ in rates) == 100 and {window for _, window in rates} == {10.0}
    assert sum(s.daily_limit for s in shares) == 200_001
    assert sum(s.concurrency for s in shares) == 8
    assert settings.rate_limit == "100/10s"  # the configured settings are left alone
    assert parse_rate(crm_share(GhlSettings(rate_limit="5/500ms"), 0, 2).rate_limit) == (3, 0.5)
