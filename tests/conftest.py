"""Session-wide test environment: no real AWS credentials, and the Powertools settings every deployed function has.

Set before any test module imports a function, since Powertools reads them when its objects are created.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "mlloop-tests",
    "POWERTOOLS_METRICS_NAMESPACE": "MLLoop/tests",
    "POWERTOOLS_TRACE_DISABLED": "true",
}.items():
    os.environ.setdefault(_name, _value)

# The pyramid's layers in the order one `pytest` process runs them: unit and infra tests start moto's in-process
# mocks (mock_aws resets every backend), so they run before the embedded cloud that the integration and e2e tests
# share exists, never in the middle of its session.
_LAYER_ORDER = ("unit", "infra", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def layer(item: pytest.Item) -> int:
        parts = item.path.relative_to(Path(__file__).parent).parts
        return _LAYER_ORDER.index(parts[0]) if parts and parts[0] in _LAYER_ORDER else len(_LAYER_ORDER)

    items.sort(key=layer)
