"""A gzipped tar of text files: how model artifacts and source bundles are handed to SageMaker."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping


def tar_gz(files: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
