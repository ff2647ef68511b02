"""The forecasts of a campaign (part of `Store`): each one as JSON, with when it was made and
from what (``"pilot"``, ``"running"``). `campaign.forecast.Forecast` reads and writes the JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openeo_upscale.campaign.store.base import StoreBase
from openeo_upscale.campaign.store.schema import forecasts_table

_f = forecasts_table


@dataclass(frozen=True)
class StoredForecast:
    id: int
    made: datetime
    basis: str
    forecast: dict[str, Any]


class ForecastQueries(StoreBase):
    """Recording and reading forecasts."""

    def record_forecast(self, campaign_id: int, basis: str, forecast: Mapping[str, Any]) -> int:
        """Keep one forecast; returns its id."""
        with self._write() as conn:
            return int(
                conn.execute(
                    sa.insert(_f)
                    .values(campaign_id=campaign_id, made=self._clock(), basis=basis, forecast=dict(forecast))
                    .returning(_f.c.id)
                ).scalar_one()
            )

    def forecast(
        self, campaign_id: int, *, basis: str | None = None, first: bool = False
    ) -> StoredForecast | None:
        """The newest forecast (of ``basis`` when given; the oldest one with ``first``), or None."""
        query = sa.select(_f).where(_f.c.campaign_id == campaign_id)
        if basis is not None:
            query = query.where(_f.c.basis == basis)
        query = query.order_by(_f.c.id if first else _f.c.id.desc()).limit(1)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredForecast(int(row.id), row.made, str(row.basis), dict(row.forecast))
