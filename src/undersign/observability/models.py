"""The shared store of counters behind ``GET /metrics`` (see ``metrics`` for why a table).

Migration notes: ``metric_samples`` has a composite primary key (name, labels); ``labels`` is
the canonical JSON of the sorted label pairs, so one row is one Prometheus series.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from undersign.db import Base, UTCDateTime, utcnow


class MetricSample(Base):
    """One series: a counter (summed from every process) or a gauge (the last value set)."""

    __tablename__ = "metric_samples"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels: Mapped[str] = mapped_column(String(400), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
