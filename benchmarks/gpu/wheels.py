"""Which wheels the GPU host lacks, fetched at the project's pinned versions: the closure of
requirements-gpu.txt over each wheel's Requires-Dist, stopping at what the host already has
(host-packages.txt). Used by prepare.py (the GPU host's Python) and by the CPU rehearsal (this machine's).
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# Every manylinux tag an x86-64 glibc host of 2024+ accepts: pip matches each tag exactly, and some projects
# publish only one of them (2_17 for older builds, 2_28 for newer, 2_34+ for a few).
PLATFORMS = ["manylinux_2_39_x86_64", "manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


@dataclass
class Root:
    """A line of requirements-gpu.txt: the package, its pin (None: constraints.txt's), the pipelines it is
    only needed by (None: all), and whether it is carried even though the host has it (`# carry`: an older
    host version would break a carried package)."""

    name: str
    pin: str | None = None
    only: frozenset[str] | None = None
    carry: bool = False


@dataclass
class Closure:
    """What a set of roots needs on the host: wheels to carry (name -> file) and host packages relied on."""

    carried: dict[str, Path] = field(default_factory=dict)
    host: set[str] = field(default_factory=set)

    @property
    def wheel_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.carried.values())


def read_roots(path: Path = HERE / "requirements-gpu.txt") -> list[Root]:
    """requirements-gpu.txt's lines (`name[==ver]  # only: a,b`), comments and blanks skipped."""
    roots = []
    for line in path.read_text().splitlines():
        spec, _, comment = line.partition("#")
        if not spec.strip():
            continue
        name, _, pin = spec.strip().partition("==")
        only = re.search(r"only:\s*([\w,\- ]+)", comment)
        roots.append(Root(canonicalize_name(name), pin.strip() or None,
                          frozenset(p.strip() for p in only.group(1).split(",")) if only else None,
                          carry=re.search(r"\bcarry\b", comment) is not None))
    return roots


def read_pins(path: Path = REPO / "constraints.txt") -> dict[str, str]:
    """constraints.txt as {canonical name: version}."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def read_host(path: Path = HERE / "host-packages.txt") -> set[str]:
    """The host's packages (canonical names), one a line, comments skipped."""
    return {canonicalize_name(line.strip()) for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def marker_env(python: str) -> dict[str, str]:
    """The environment markers of CPython `python` ("3.12") on x86-64 Linux."""
    return {"python_version": python, "python_full_version": python + ".0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def requires(wheel: Path, python: str) -> list[str]:
    """The canonical names a wheel needs on CPython `python`/Linux (its Requires-Dist, extras left out)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        headers = Parser().parsestr(z.read(meta).decode())
    names = []
    for line in headers.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(marker_env(python)):
            names.append(canonicalize_name(req.name))
    return names


def wheels_in(folder: Path) -> dict[str, Path]:
    """{canonical name: wheel file} of a folder."""
    return {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in sorted(folder.glob("*.whl"))}


def download(specs: list[str], python: str, dest: Path) -> None:
    """`pip download` of exact `name==version` specs for CPython `python` on manylinux x86-64, no deps.

    Raises:
        RuntimeError: pip failed (a pin with no wheel for that Python, or no network).
    """
    if not specs:
        return
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           python, "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest),
           *specs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pip download failed for {' '.join(specs)}:\n{done.stderr[-3000:]}")


def resolve(roots: list[Root], pins: dict[str, str], host: set[str], python: str, store: Path) -> Closure:
    """The wheels `roots` need that the host lacks, downloaded into `store` (kept between runs: a wheel already
    there at its pinned version is not fetched again), following each carried wheel's requirements.

    Raises:
        RuntimeError: a carried package with no pin (constraints.txt or requirements-gpu.txt) or no wheel.
    """
    wanted = {r.name: r.pin or pins.get(r.name) for r in roots}
    host = host - {r.name for r in roots if r.carry}
    closure, queue, seen = Closure(), list(wanted), set()
    while queue:
        batch = []
        for name in queue:
            if name in seen:
                continue
            seen.add(name)
            if name in host:
                closure.host.add(name)
                continue
            version = wanted.get(name) or pins.get(name)
            if version is None:
                raise RuntimeError(f"{name}: the GPU host lacks it and no pin says which version to carry "
                                   "(add `name==version` to benchmarks/gpu/requirements-gpu.txt)")
            have = wheels_in(store).get(name)
            if have is not None and parse_wheel_filename(have.name)[1].public != version:
                have.unlink()  # one version of each: two would stop the install on the host
                have = None
            if have is None:
                batch.append(f"{name}=={version}")
            closure.carried[name] = Path()  # filled in below, once downloaded
        download(batch, python, store)
        found = wheels_in(store)
        queue = []
        for name in [n for n, p in closure.carried.items() if p == Path()]:
            if name not in found:
                raise RuntimeError(f"{name}: pip reported success but left no wheel in {store}")
            closure.carried[name] = found[name]
            queue += requires(found[name], python)
    return closure
