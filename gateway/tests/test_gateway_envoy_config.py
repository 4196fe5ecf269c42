"""Unit tests on the rendered Envoy config (no Envoy process)."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from ecom_gateway import envoy
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

DESCRIPTOR = envoy.load_descriptor(envoy.DESCRIPTOR_PATH)
PUBLIC = envoy.public_services(DESCRIPTOR)
ALL_CLUSTERS = {s.cluster: ("127.0.0.1", 50051 + i) for i, s in enumerate(PUBLIC)}


def render(services: dict[str, tuple[str, int]] = ALL_CLUSTERS, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clusters left out on purpose in some tests
        return yaml.safe_load(envoy.render_config(8080, 9901, services, **kwargs))


def hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def http_filter(config: dict[str, Any], name: str) -> dict[str, Any]:
    filters = {f["name"]: f["typed_config"] for f in hcm(config)["http_filters"]}
    return filters[f"envoy.filters.http.{name}"]


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    return hcm(config)["route_config"]["virtual_hosts"][0]["routes"]


def grpc_service_names(descriptor: descriptor_pb2.FileDescriptorSet) -> set[str]:
    return {f"{f.package}.{s.name}" for f in descriptor.file for s in f.service}


def test_public_services_are_the_annotated_ecommerce_ones() -> None:
    names = {s.name for s in PUBLIC}
    assert {"ecommerce.auth.v1.AuthService", "ecommerce.auth.v1.UserService"} <= names
    assert not any(name.endswith("InternalService") for name in names)
    assert all(s.cluster == s.name.split(".")[1] for s in PUBLIC)


def test_public_services_skips_internal_unannotated_and_foreign_services() -> None:
    def file(package: str, services: dict[str, bool]) -> descriptor_pb2.FileDescriptorProto:
        proto = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package)
        for name, annotated in services.items():
            method = proto.service.add(name=name).method.add(name="Do")
            if annotated:
                method.options.Extensions[annotations_pb2.http].CopyFrom(
                    http_pb2.HttpRule(get="/api/x")
                )
        return proto

    descriptor = descriptor_pb2.FileDescriptorSet(
        file=[
            file("ecommerce.shop.v1", {"ShopService": True, "ShopInternalService": True}),
            file("ecommerce.quiet.v1", {"QuietService": False}),
            file("google.longrunning", {"Operations": True}),
        ]
    )
    assert envoy.public_services(descriptor) == [
        envoy.PublicService("ecommerce.shop.v1.ShopService", "shop")
    ]


def test_every_public_service_is_routed_to_its_cluster_and_the_rest_is_404() -> None:
    config = render()
    by_prefix = {r["match"].get("prefix"): r for r in routes(config)}
    for service in PUBLIC:
        route = by_prefix[f"/{service.name}/"]
        assert route["match"]["headers"] == [  # gRPC and gRPC-Web
            {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
        ]
        assert route["route"] == {"cluster": service.cluster, "timeout": "15s"}
    assert routes(config)[-1] == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}


def test_internal_services_are_neither_routed_nor_transcoded() -> None:
    config = render()
    internal = {n for n in grpc_service_names(DESCRIPTOR) if n.endswith("InternalService")}
    assert "ecommerce.auth.v1.AuthInternalService" in internal
    prefixes = [r["match"].get("prefix", "") for r in routes(config)]
    assert not any(p.endswith("InternalService/") for p in prefixes)
    assert not internal & set(http_filter(config, "grpc_json_transcoder")["services"])


def test_transcoder_options_follow_the_api_conventions() -> None:
    transcoder = http_filter(render(), "grpc_json_transcoder")
    assert transcoder["services"] == sorted(s.name for s in PUBLIC)
    assert transcoder["convert_grpc_status"] is True
    assert transcoder["ignore_unknown_query_parameters"] is True
    assert transcoder["auto_mapping"] is False
    assert transcoder["print_options"] == {
        "preserve_proto_field_names": True,
        "always_print_primitive_fields": True,
        "always_print_enums_as_ints": False,
    }
    inline = descriptor_pb2.FileDescriptorSet.FromString(
        base64.b64decode(transcoder["proto_descriptor_bin"])
    )
    # convert_grpc_status prints google.rpc.BadRequest details only if Envoy knows the type.
    assert "google/rpc/error_details.proto" in {f.name for f in inline.file}
    assert grpc_service_names(inline) == grpc_service_names(DESCRIPTOR)


def test_one_http2_cluster_with_grpc_health_checks_per_service() -> None:
    config = render({"auth": ("127.0.0.1", 50051), "catalog": ("catalog.internal", 50052)})
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert set(clusters) == {"auth", "catalog"}
    assert clusters["auth"]["type"] == "STATIC"
    assert clusters["catalog"]["type"] == "STRICT_DNS"
    for cluster in clusters.values():
        options = cluster["typed_extension_protocol_options"]
        http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in http["explicit_http_config"]
        (check,) = cluster["health_checks"]
        assert "grpc_health_check" in check
        assert check["interval"] == check["no_traffic_interval"] == "1s"


def test_healthz_needs_every_cluster_fully_healthy() -> None:
    health = http_filter(render(), "health_check")
    assert health["pass_through_mode"] is False
    assert health["headers"] == [{"name": ":path", "string_match": {"exact": "/healthz"}}]
    assert health["cluster_min_healthy_percentages"] == {
        name: {"value": 100.0} for name in ALL_CLUSTERS
    }


def test_listener_admin_and_body_limit() -> None:
    config = render()
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 9901,
    }
    assert http_filter(config, "buffer")["max_request_bytes"] == 1024 * 1024
    names = [f["name"].rsplit(".", 1)[-1] for f in hcm(config)["http_filters"]]
    assert names == ["grpc_web", "lua", "health_check", "buffer", "grpc_json_transcoder", "router"]


def test_local_replies_get_the_api_error_shape() -> None:
    mappers = hcm(render())["local_reply_config"]["mappers"]
    bodies = {
        m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]: m[
            "body_format_override"
        ]["json_format"]
        for m in mappers
        if m["filter"]["status_code_filter"]["comparison"]["op"] == "EQ"
    }
    assert bodies[413] == {"code": 3, "message": "request body exceeds 1 MiB", "details": []}
    assert bodies[400] == {"code": 3, "message": "%LOCAL_REPLY_BODY%", "details": []}
    assert bodies[404]["code"] == 5
    assert mappers[-1]["filter"]["status_code_filter"]["comparison"]["op"] == "GE"


def test_access_log_is_off_unless_asked_for() -> None:
    assert "access_log" not in hcm(render())
    (log,) = hcm(render(access_log=True))["access_log"]
    fields = log["typed_config"]["log_format"]["json_format"]
    assert {"method", "path", "status", "duration_ms", "upstream_cluster", "traceparent"} <= set(
        fields
    )


def test_clusters_missing_for_public_services_warn_and_none_at_all_fails() -> None:
    if len({s.cluster for s in PUBLIC}) > 1:
        with pytest.warns(UserWarning, match="no cluster configured"):
            envoy.render_config(8080, 9901, {"auth": ("127.0.0.1", 50051)})
    with pytest.raises(ValueError, match="no public service"):
        render({"nosuch": ("127.0.0.1", 50051)})


def test_cli_prints_the_same_config(capsys: pytest.CaptureFixture[str]) -> None:
    services = {"auth": ("127.0.0.1", 50051)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        envoy.main(
            ["--http-port", "8080", "--admin-port", "9901", "--service", "auth=127.0.0.1:50051"]
        )
    assert yaml.safe_load(capsys.readouterr().out) == render(services)


def test_config_names_no_path_of_this_machine() -> None:
    text = envoy.render_config(8080, 9901, ALL_CLUSTERS)
    assert str(Path(__file__).resolve().parents[2]) not in text
