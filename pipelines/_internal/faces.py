"""A package's public face, loaded on first use.

Each stage package lists its public names in ``__all__`` and gets them from its modules only when
one is asked for (PEP 562): importing ``visuels.engine`` for its ``ExportTarget`` does not load
torch, and a module of a package can import a sibling without the package importing everything
first (no import cycles through ``__init__``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, modules: dict[str, list[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports a public name from the module of ``package`` that
    ``modules`` (module -> its public names) lists it under, when it is asked for."""
    where = {name: module for module, names in modules.items() for name in names}

    def get(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return get
