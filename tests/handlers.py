"""Load a Lambda handler module the way the Lambda runtime does: by file, from the function's task root."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"


def load_handler(function: str, *, fresh: bool = False) -> ModuleType:
    """Import functions/<function>/app.py as module `maas_handler_<function>` (cached unless fresh)."""
    module_name = f"maas_handler_{function}"
    if not fresh and module_name in sys.modules:
        return sys.modules[module_name]
    path = FUNCTIONS_DIR / function / "app.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load handler from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
