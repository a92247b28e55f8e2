"""Session-wide test environment: no real AWS credentials, and the Powertools settings every deployed function has.

Set before any test module imports a function, since Powertools reads them when its objects are created.
"""

from __future__ import annotations

import os

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
