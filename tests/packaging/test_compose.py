"""packaging/docker/compose.yaml cannot be run here (no image registry); check what can be checked:
its shape, and that the callsync command it runs is one this callsync accepts."""

from __future__ import annotations

from pathlib import Path

import yaml

from connector import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "packaging" / "docker" / "compose.yaml"


def test_compose_runs_two_workers_on_postgres_15_with_a_volume_and_a_healthcheck():
    spec = yaml.safe_load(COMPOSE.read_text())
    pg, app = spec["services"]["postgres"], spec["services"]["callsync"]
    assert pg["image"] == "postgres:15"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (COMPOSE.parent / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == (
        ROOT / "packaging" / "docker" / "Dockerfile")
    args = cli.parse_args(app["command"])
    assert args.command == "serve" and args.workers == 2
    assert args.store_url.startswith("postgresql://") and ":" not in args.store_url.split("//")[1].split("@")[0]
    assert "CALLSYNC_STORE_PASSWORD" in app["environment"]
