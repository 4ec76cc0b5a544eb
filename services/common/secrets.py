"""Where a secret is kept, read when it is needed and never logged: a file (a mounted Kubernetes Secret,
which the kubelet rotates in place) or an environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Secret:
    file: str = ""
    env: str = ""
    value: str = field(default="", repr=False)

    def read(self) -> str:
        """The secret as it is now (a rotated file is read again); raises OSError when the file is gone."""
        if self.file:
            return Path(self.file).read_text().strip()
        if self.env:
            return os.environ.get(self.env, "").strip()
        return self.value

    @property
    def configured(self) -> bool:
        return bool(self.file or self.env or self.value)

    def __repr__(self) -> str:
        return f"Secret(file={self.file!r}, env={self.env!r})"
