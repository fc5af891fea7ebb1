"""Service.apply_config: a freshly loaded configuration takes effect in the running service (what the window
does after editing config.toml), and the CRM keys the file sets are known from the typed settings."""

from __future__ import annotations

import aiohttp
import pytest

from connector import secrets
from connector.config import parse_config
from connector.sync.settings import parse_ghl
from tests.conftest import SECRET
from tests.signing import dumps, hmac_headers


async def post(service, source: str) -> int:
    body = dumps({"event": "call.initiated", "call_uuid": f"ac-{source}", "from": "+12025550100",
                  "to": "+12025550199", "direction": "outbound"})
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{service.hooks_url}/hooks/{source}", data=body, headers=hmac_headers(body, SECRET)) as r:
            return r.status


async def test_new_sources_public_url_and_crm_settings_apply_without_a_restart(service):
    secrets.set_secret("source:fresh", SECRET)
    secrets.invalidate_cache()
    assert await post(service, "fresh") == 404
    data = {"server": {"port": 0, "admin_port": 0, "public_url": "https://example.trycloudflare.com"},
            "sources": {"fresh": {"kind": "hmac"}},
            "crm": {"ghl": {"location_id": "loc-1", "concurrency": 2}}}
    config = service.config
    service.apply_config(parse_config(data, service.config.data_dir))
    assert service.config is config  # the receiver's own config object, changed in place
    assert await post(service, "fresh") == 200
    assert await post(service, "dialer") == 404  # no longer configured
    assert service.config.server.public_url == "https://example.trycloudflare.com"
    assert service.worker.settings.location_id == "loc-1" and service.worker.crm.settings.concurrency == 2
    assert service.config.ghl.explicit_keys == {"location_id", "concurrency"}


@pytest.mark.parametrize("table, keys", [
    ({}, set()),
    ({"crm": {"ghl": {}}}, set()),
    ({"crm": {"ghl": {"location_id": "x", "base_url": "https://services.leadconnectorhq.com"}}},
     {"location_id", "base_url"}),  # set to its default, still set in the file
])
def test_the_settings_know_which_crm_keys_the_file_sets(table, keys):
    assert parse_ghl(table).explicit_keys == keys


def test_explicit_keys_are_not_a_config_key():
    from connector.config import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'explicit_keys'"):
        parse_ghl({"crm": {"ghl": {"explicit_keys": ["x"]}}})
