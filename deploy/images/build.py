"""`make images`: build every deployable's image with buildah, on a Debian base made here.

No container registry is needed: the base image (Debian minbase with python3) is made with
debootstrap from the Debian mirror this machine's apt already uses (or `DEBIAN_MIRROR`) and
imported into buildah's local storage; then each Containerfile (found by glob, one per
deployable) is built from the repository root with it as `BASE_IMAGE`.

    python deploy/images/build.py                 # base (once) and every image
    python deploy/images/build.py auth gateway    # only these deployables
    BASE_IMAGE=python:3.13-slim python deploy/images/build.py   # a base you can pull instead

Images are named `ecom-<deployable>:<IMAGE_TAG>` (default `dev`). buildah's storage driver and
isolation default to `vfs` and `chroot`, which work without overlayfs or user namespaces (in a
container, in CI); set STORAGE_DRIVER / BUILDAH_ISOLATION to override.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "trixie"  # Debian 13: Python 3.13
# What the Containerfiles need from the base: the interpreter, venv (build stage) and CA
# certificates (Stripe, SendGrid, SMTP STARTTLS).
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
BASE_NAME = f"ecom-base:{SUITE}"
INSTALL_HINT = "install them with: apt-get install -y buildah debootstrap (as root)"


def containerfiles(root: Path = ROOT) -> dict[str, Path]:
    """Deployable name -> its Containerfile: each service and the edge."""
    found = {p.parent.name: p for p in sorted(root.glob("services/*/Containerfile"))}
    gateway = root / "gateway" / "Containerfile"
    if gateway.exists():
        found["gateway"] = gateway
    return found


def parse_apt_sources(text: str, deb822: bool) -> list[tuple[str, list[str]]]:
    """(URI, suites) of each `deb` entry of an apt sources file, in order."""
    entries: list[tuple[str, list[str]]] = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            enabled = fields.get("enabled", "yes").lower() != "no"
            if enabled and "deb" in fields.get("types", "").split():
                suites = fields.get("suites", "").split()
                entries += [(uri, suites) for uri in fields.get("uris", "").split()]
    else:
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], [words[2]]))
    return entries


def debian_mirror() -> str:
    """DEBIAN_MIRROR, else the first apt source of the main archive (not security or updates)."""
    if mirror := os.environ.get("DEBIAN_MIRROR"):
        return mirror
    apt = Path("/etc/apt")
    files = [(p, True) for p in sorted(apt.glob("sources.list.d/*.sources"))]
    files += [
        (p, False) for p in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]
    ]
    for path, deb822 in files:
        if not path.is_file():
            continue
        for uri, suites in parse_apt_sources(path.read_text(), deb822):
            # The main archive has a plain suite name ("bookworm"); "-security"/"-updates" do not.
            if any("-" not in suite and "/" not in suite for suite in suites):
                return uri
    raise SystemExit("no Debian mirror found in /etc/apt: set DEBIAN_MIRROR=<archive URL>")


def buildah(*args: str, capture: bool = False) -> str:
    command = ["buildah", *args]  # checked to be on PATH
    output = subprocess.PIPE if capture else None
    result = subprocess.run(command, check=True, text=True, stdout=output)  # noqa: S603
    return result.stdout.strip() if capture else ""


def image_exists(name: str) -> bool:
    found = subprocess.run(  # noqa: S603
        ["buildah", "inspect", "--type", "image", name],  # noqa: S607
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return found.returncode == 0


def make_base(name: str, mirror: str) -> None:
    """Debian minbase with BASE_PACKAGES, imported into buildah's storage as `name`."""
    print(f"base image {name}: debootstrap {SUITE} from {mirror}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ecom-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        debootstrap = [
            "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            SUITE, str(rootfs), mirror,
        ]  # fmt: skip
        subprocess.run(debootstrap, check=True)  # noqa: S603
        # Package lists, caches and docs are not needed in an image.
        for junk in ["var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"]:
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)  # noqa: S603, S607
        container = buildah("from", "scratch", capture=True)
        try:
            buildah("add", container, str(tarball), "/")  # a local tar is unpacked
            buildah("config", "--env", "LANG=C.UTF-8", "--cmd", "/bin/bash", container)
            buildah("commit", "--quiet", container, name)
        finally:
            buildah("rm", container)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="deployables to build (default: all)")
    parser.add_argument("--rebuild-base", action="store_true", help="debootstrap the base again")
    args = parser.parse_args(argv)

    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    base = os.environ.get("BASE_IMAGE", "")
    if base:
        missing = [tool for tool in missing if tool != "debootstrap"]  # no base to make
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not found: {INSTALL_HINT}")
    os.environ.setdefault("STORAGE_DRIVER", "vfs")
    os.environ.setdefault("BUILDAH_ISOLATION", "chroot")

    files = containerfiles()
    unknown = set(args.only) - set(files)
    if unknown:
        raise SystemExit(f"no Containerfile for {sorted(unknown)}; choose from {sorted(files)}")
    if not base:
        base = BASE_NAME
        if args.rebuild_base or not image_exists(base):
            make_base(base, debian_mirror())

    tag = os.environ.get("IMAGE_TAG", "dev")
    volumes = []
    # Behind a TLS-inspecting proxy pip needs its CA: lent to the RUN steps as the system
    # bundle (a volume is never committed into the image).
    if ca := os.environ.get("BUILD_CA_BUNDLE") or os.environ.get("PIP_CERT"):
        volumes = ["--volume", f"{Path(ca).resolve()}:/etc/ssl/certs/ca-certificates.crt:ro"]
    built = []
    for deployable, containerfile in files.items():
        if args.only and deployable not in args.only:
            continue
        image = f"ecom-{deployable}:{tag}"
        started = time.monotonic()
        print(f"building {image} from {containerfile.relative_to(ROOT)}", flush=True)
        buildah(
            "bud", *volumes, "--file", str(containerfile), "--build-arg", f"BASE_IMAGE={base}",
            "--tag", image, str(ROOT),
        )  # fmt: skip
        built.append(f"{image} ({time.monotonic() - started:.0f} s)")
    print("built: " + ", ".join(built))
    buildah("images", "--filter", "reference=ecom-*")


if __name__ == "__main__":
    main()
