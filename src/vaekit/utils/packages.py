"""Where a module came from: the installed distribution that provides it, recorded with a plugin's model
or part (its origin), so that a run whose plugin is missing names what to install."""

from __future__ import annotations

import importlib.metadata


def origin_of(module: str) -> dict[str, str]:
    """``module`` and the installed distribution (package, version) of its top-level package, if any."""
    top = module.split(".")[0]
    for dist_name in importlib.metadata.packages_distributions().get(top, []):
        try:
            return {"module": module, "package": dist_name, "version": importlib.metadata.version(dist_name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"module": module}
