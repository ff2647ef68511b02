"""Read-only aggregates for the monitor, the report, exports and catalogues (part of `Store`)."""

from __future__ import annotations

from openeo_upscale.campaign.store.base import StoreBase


class ViewQueries(StoreBase):
    """Named read-only queries over tasks, events and the ledger."""
