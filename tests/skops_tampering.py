"""Test helper: forge a skops estimator file (the name is unique so it imports from tests/)."""

from __future__ import annotations

import json
import zipfile


def tamper_skops(file, module: str, cls: str) -> None:
    """Rewrite a skops file so that its top-level object claims ``module.cls``."""
    with zipfile.ZipFile(file) as z:
        members = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(members["schema.json"])
    schema["__module__"], schema["__class__"] = module, cls
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(file, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
