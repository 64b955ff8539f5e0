"""Prepare what the GPU check sends, on the development machine (PyPI reachable; the GPU host has no network).

    .venv/bin/python benchmarks/gpu/prepare.py                          # for the GPU host: Python 3.12, .whl/
    .venv/bin/python benchmarks/gpu/prepare.py --python 3.11 --dest gpu-out/rehearsal/whl   # the CPU rehearsal's

Downloads exactly the wheels the GPU host lacks (benchmarks/gpu/requirements-gpu.txt and their requirements,
minus host-packages.txt) at the project's pinned versions (constraints.txt), then lays them out as one folder
per device command, DEST/partN/ (hard links into DEST/all-pyX.Y/), each with pipelines.txt naming what that command
checks. One command may send at most 64 MiB (the working tree plus the carried wheels): when everything does
not fit in one, the requirements that only some pipelines need (`# only:` in requirements-gpu.txt; PyAV, about
35 MB, only for audio-to-text) move to a command of their own, largest first. Prints what each command sends
and the exact `run` call; writes DEST/plan.json and DEST/host-needs.txt (the host packages relied on, at
constraints.txt's pins: what the rehearsal's venv installs in place of the host's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wheels import REPO, Closure, Root, read_host, read_pins, read_roots, resolve  # noqa: E402

LIMIT_BYTES = 64 * 1024**2  # what one device command may send: working tree + carried paths
MIB = 1024**2


@dataclass
class Part:
    """One device command: the pipelines it checks, the roots they need, and their closure."""

    pipelines: list[str]
    roots: list[Root]
    closure: Closure | None = None

    def sends(self, tree: int) -> int:
        """Bytes this command sends: the working tree plus its wheels."""
        return tree + (self.closure.wheel_bytes if self.closure else 0)


def tree_bytes(repo: Path = REPO) -> int:
    """What travels with every command: tracked files plus untracked ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout
    total = 0
    for name in {n for n in out.decode().split("\0") if n}:
        path = repo / name
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def served_pipelines() -> list[str]:
    """Every pipeline this build serves with a reference runner, in table order."""
    from runner_sdk.pipelines import served

    return [p.name for p in served()]


def roots_for(roots: list[Root], pipelines: list[str]) -> list[Root]:
    """The roots some of `pipelines` need (every unrestricted one, and each `only:` one they name)."""
    return [r for r in roots if r.only is None or r.only & set(pipelines)]


def plan(roots: list[Root], pins: dict[str, str], host: set[str], python: str, store: Path, tree: int,
         limit: int = LIMIT_BYTES) -> list[Part]:
    """Split the served pipelines into as few commands as fit `limit` bytes each.

    Raises:
        RuntimeError: a command cannot be brought under the limit by moving `only:` requirements out.
    """
    served = served_pipelines()
    parts = [Part(served, roots_for(roots, served))]
    parts[0].closure = resolve(parts[0].roots, pins, host, python, store)
    while (big := next((p for p in parts if p.sends(tree) > limit), None)) is not None:
        groups = {r.only for r in big.roots if r.only is not None and not set(big.pipelines) <= r.only}
        if not groups:
            raise RuntimeError(f"a command checking {big.pipelines} sends {big.sends(tree) / MIB:.1f} MiB, over "
                               f"{limit / MIB:.0f} MiB, and nothing more can move to a command of its own")
        # Move out the group whose own wheels weigh most (their closure without it versus with it).
        def freed(group: frozenset[str]) -> int:
            kept = [r for r in big.roots if r.only != group]
            return big.closure.wheel_bytes - resolve(kept, pins, host, python, store).wheel_bytes
        group = max(groups, key=freed)
        moved = [p for p in big.pipelines if p in group]
        big.pipelines = [p for p in big.pipelines if p not in group]
        big.roots = roots_for(roots, big.pipelines)
        big.closure = resolve(big.roots, pins, host, python, store)
        part = Part(moved, roots_for(roots, moved))
        part.closure = resolve(part.roots, pins, host, python, store)
        parts.append(part)
    return parts


def lay_out(parts: list[Part], dest: Path, pins: dict[str, str]) -> None:
    """DEST/partN/ per command (hard links to the store, pipelines.txt), DEST/host-needs.txt, DEST/plan.json."""
    for old in dest.glob("part*"):
        shutil.rmtree(old)
    for i, part in enumerate(parts, 1):
        folder = dest / f"part{i}"
        folder.mkdir(parents=True)
        for wheel in part.closure.carried.values():
            try:
                os.link(wheel, folder / wheel.name)
            except OSError:  # another file system: a copy does as well
                shutil.copy2(wheel, folder / wheel.name)
        (folder / "pipelines.txt").write_text("\n".join(part.pipelines) + "\n")
    host = sorted(set().union(*(p.closure.host for p in parts)))
    (dest / "host-needs.txt").write_text("".join(f"{n}=={pins[n]}\n" if n in pins else f"{n}\n" for n in host))


def report(parts: list[Part], tree: int, dest: Path, python: str) -> list[dict]:
    """Print what each command sends and the `run` call; return the same as plan.json's rows."""
    rows = []
    try:
        shown = dest.resolve().relative_to(REPO)
    except ValueError:
        shown = dest
    print(f"GPU check for Python {python}: {len(parts)} command(s); working tree {tree / MIB:.2f} MiB "
          f"(git ls-files, untracked-not-ignored included), limit {LIMIT_BYTES / MIB:.0f} MiB per command")
    for i, part in enumerate(parts, 1):
        wheels = part.closure.carried
        row = {"part": i, "pipelines": part.pipelines, "sends_bytes": part.sends(tree), "tree_bytes": tree,
               "wheel_bytes": part.closure.wheel_bytes, "wheels": sorted(p.name for p in wheels.values()),
               "carry": [f"{shown}/part{i}"], "command": f"bash benchmarks/gpu/check.sh --part {i}"}
        rows.append(row)
        verdict = "OK" if row["sends_bytes"] <= LIMIT_BYTES else "OVER THE LIMIT"
        print(f"  part {i}: sends {row['sends_bytes'] / MIB:.2f} MiB = tree {tree / MIB:.2f} + {len(wheels)} wheels "
              f"{row['wheel_bytes'] / MIB:.2f} MiB [{verdict}] -- {', '.join(part.pipelines)}")
        for p in sorted(wheels.values(), key=lambda p: -p.stat().st_size)[:4]:
            print(f"      {p.stat().st_size / MIB:6.2f} MiB  {p.name}")
        print(f"    run(carry={json.dumps(row['carry'])}, command={json.dumps(row['command'])}, timeout_s=600)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="3.12", help="the target's CPython X.Y (the GPU host: 3.12)")
    parser.add_argument("--dest", type=Path, default=REPO / ".whl", help="git-ignored folder for the wheels")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_BYTES / MIB, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    store = args.dest / f"all-py{args.python}"  # per Python: a wheel of the same version may be cp311 or cp312
    pins, host, roots = read_pins(), read_host(), read_roots()
    tree = tree_bytes()
    parts = plan(roots, pins, host, args.python, store, tree, int(args.limit_mib * MIB))
    # Drop store wheels no part uses any more (an old pin), so the folder holds one version of each.
    used = {p.name for part in parts for p in part.closure.carried.values()}
    for stale in [p for p in store.glob("*.whl") if p.name not in used]:
        stale.unlink()
    lay_out(parts, args.dest, pins)
    rows = report(parts, tree, args.dest, args.python)
    (args.dest / "plan.json").write_text(json.dumps({"python": args.python, "limit_bytes": LIMIT_BYTES,
                                                     "parts": rows}, indent=2) + "\n")
    return 0 if all(r["sends_bytes"] <= LIMIT_BYTES for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
