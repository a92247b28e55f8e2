"""The embedded AWS: moto in server mode plus local implementations of what moto does not do.

See docs/local-cloud.md. `LocalCloud.start()` is the entry point; `python -m mlloop.localcloud` the CLI.
"""

from mlloop.localcloud.server import ACCOUNT_ID, LocalCloud, time_scale_from_env

__all__ = ["ACCOUNT_ID", "LocalCloud", "time_scale_from_env"]
