"""Makes the generated protobuf code a set of regular packages, so mypy and imports see them."""

import pathlib
import sys

root = pathlib.Path(sys.argv[1])
for folder in [p for p in root.rglob("*") if p.is_dir()] + [root]:
    if folder != root:
        (folder / "__init__.py").touch()
(root / "py.typed").touch()
