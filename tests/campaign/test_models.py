"""The typed records of what the store keeps and what a campaign reports round-trip through their
dict form, which is what the store, `status --json` and the monitors hold."""

from __future__ import annotations

from pathlib import Path

from openeo_upscale.backend import LocalBackend
from openeo_upscale.campaign import Campaign, CampaignSettings, CampaignSummary, Limits, Polling, Store
from tests.campaign.team import DEFAULTS, connect, grid, max_ndvi


def test_a_created_campaign_reports_a_summary_that_round_trips(tmp_path: Path, udp_dir: Path,
                                                               backend: LocalBackend) -> None:
    with Store.open(tmp_path / "campaign.sqlite") as store:
        campaign = Campaign.create(store, grid(3), max_ndvi(udp_dir), defaults=DEFAULTS,
                                   output_dir=tmp_path / "out", limits=Limits(max_credits=7.5),
                                   polling=Polling(min_interval=0.2, max_interval=1.0))
        summary = campaign.summary()
        assert summary["tasks"] == 3 and summary["counts"]["pending"] == 3 and summary["backends"] == {}
        assert CampaignSummary.from_dict(summary).to_dict() == summary
        campaign.add_backend("local", connect(backend), parallel_jobs=2)
        attached = campaign.summary()
        local = attached["backends"]["local"]
        assert local["parallel_jobs"] == 2 and local["requests"] >= 0 and "state" in local
        assert CampaignSummary.from_dict(attached).to_dict() == attached
        assert campaign.status().backends["local"].health["state"] == local["state"]
        stored = store.campaign(campaign.id)["config"]
        settings = CampaignSettings.from_dict(stored)
        assert settings.to_dict() == stored
        assert settings.limits.max_credits == 7.5 and settings.polling.min_interval == 0.2
        assert settings.results_folder == (tmp_path / "out").resolve()


def test_stored_settings_of_an_older_release_read_with_defaults_and_keep_unknown_keys() -> None:
    old = {"uid": "abc123", "output_dir": None, "retry": {}, "limits": {}, "polling": {}, "someday": [1, 2]}
    settings = CampaignSettings.from_dict(old)
    assert settings.results_folder == Path("results") and settings.job_options is None
    assert settings.backends == () and settings.to_dict()["someday"] == [1, 2]
