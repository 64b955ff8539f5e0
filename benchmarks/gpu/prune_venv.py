"""Which packages the rehearsal's venv must lose so that only the carried wheels can provide them, as on the
GPU host. Prints their names, one a line (check.sh passes them to `pip uninstall`).

    python prune_venv.py HOST_PACKAGES_TXT                # every installed package the host does not have
    python prune_venv.py HOST_PACKAGES_TXT --carried DIR  # only those the carried wheels in DIR provide

The first is exact when the venv holds the host's own versions (host-versions.txt); with constraints.txt's
versions (huggingface_hub 2.4 needs httpx2, which the host's 1.33 does not) only the second is possible.
Runs with the venv's python; standard library only.
"""

from __future__ import annotations

import argparse
import re
from importlib.metadata import distributions
from pathlib import Path


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host", type=Path)
    parser.add_argument("--carried", type=Path, default=None)
    args = parser.parse_args()
    installed = {norm(d.metadata["Name"]) for d in distributions()}
    if args.carried is not None:
        drop = installed & {norm(p.name.split("-")[0]) for p in args.carried.glob("*.whl")}
    else:
        host = {norm(line.strip()) for line in args.host.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
        drop = installed - host - {"pip", "setuptools"}
    print("\n".join(sorted(drop)))


if __name__ == "__main__":
    main()
