"""Alembic migrations of the store (run by `openeo_upscale.campaign.store.migrate`, not by hand)."""
