"""S3 conditional writes as AWS applies them: the precondition and the write are one atomic step.

moto 5.2.5 checks `If-None-Match: *` and `If-Match: <ETag>` on PutObject (`S3Response.put_object`), but reads the
current object and writes the new one as two steps with nothing between them, so two concurrent conditional
writes to one key can both pass. S3 guarantees that of concurrent conditional writers exactly one succeeds, the
others getting 412 PreconditionFailed or 409 ConditionalRequestConflict (S3 User Guide, "How to prevent object
overwrites with conditional writes": https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
install() makes every PutObject in this process one step against the others, so a loser sees the winner's object
and gets moto's 412.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_originals: dict[str, Any] = {}


def _put_object(self: Any) -> Any:
    with _lock:
        return _originals["put_object"](self)


def install(cloud: Any) -> None:
    from moto.s3.responses import S3Response

    if not _originals:
        _originals["put_object"] = S3Response.put_object
        S3Response.put_object = _put_object  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.s3.responses import S3Response

    original = _originals.pop("put_object", None)
    if original is not None:
        S3Response.put_object = original  # type: ignore[method-assign]
