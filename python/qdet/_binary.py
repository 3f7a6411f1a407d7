"""Where the bundled ``qdet`` binary is; no imports beyond the standard library, so the
``qdet`` command starts at once."""
import os
from pathlib import Path


def binary() -> str:
    """The path of the ``qdet`` binary this package runs (``QDET_BINARY`` overrides it)."""
    override = os.environ.get("QDET_BINARY")
    if override:
        return override
    bundled = Path(__file__).parent / "bin" / "qdet"
    if bundled.is_file():
        return str(bundled)
    raise RuntimeError(f"no qdet binary in {bundled.parent} (set QDET_BINARY to one)")
