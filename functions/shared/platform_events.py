"""Events the platform itself puts on the default bus, named once for their emitters and the rules that match."""

from __future__ import annotations

INGEST_SOURCE = "mlloop.ingest"
# One per raw file that produced curated rows: new data triggers retraining once per file, not once per partition.
CURATED_DATA_INGESTED = "Curated Data Ingested"
