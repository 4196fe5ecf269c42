"""Render the Envoy edge configuration (a v3 bootstrap) from the protos' descriptor set.

The edge transcodes the public REST API (`google.api.http` annotations) to gRPC, routes by
gRPC path to one cluster per service, answers `GET /healthz` from the clusters' active gRPC
health checks, caps request bodies at 1 MiB and turns every reply Envoy makes by itself into
the API's JSON error shape `{"code", "message", "details"}` (see docs/rest-guide.md, Errors).

    python -m ecom_gateway.envoy --http-port 8080 --admin-port 9901 \
        --service auth=127.0.0.1:50051 --service catalog=127.0.0.1:50052 > envoy.yaml
"""

from __future__ import annotations

import argparse
import base64
import html
import ipaddress
import json
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import swagger_ui_bundle
import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from ecom_gateway import hardening
from ecom_gateway.hardening import EdgeOptions

DESCRIPTOR_PATH = Path(__file__).with_name("api_descriptor.pb")
MAX_BODY_BYTES = 1024 * 1024
ROUTE_TIMEOUT = "15s"
HEALTH_PATH = "/healthz"
MAX_CONNECTIONS = 10_000  # overload manager cap; Envoy warns at startup without one

Json = dict[str, Any]


@dataclass(frozen=True)
class PublicService:
    name: str  # fully qualified, e.g. "ecommerce.auth.v1.AuthService"
    cluster: str  # the package's second component, e.g. "auth"


def public_services(descriptor: descriptor_pb2.FileDescriptorSet) -> list[PublicService]:
    """Services of the `ecommerce.*` packages that have at least one HTTP-annotated RPC.

    `*InternalService`s carry no annotations and are skipped twice over: they must never be
    reachable from the edge, not even by a native gRPC client.
    """
    found = []
    for file in descriptor.file:
        parts = file.package.split(".")
        if parts[0] != "ecommerce" or len(parts) < 2:
            continue
        for service in file.service:
            routed = any(m.options.HasExtension(annotations_pb2.http) for m in service.method)
            if routed and not service.name.endswith("InternalService"):
                found.append(PublicService(f"{file.package}.{service.name}", parts[1]))
    return found


# HTTP allows header names gRPC metadata does not (`a|b`, `x!`): forwarded as metadata they
# make the service's gRPC stack reject the whole call (a 500). No request we serve needs one,
# so they are dropped at the edge; every other header passes untouched.
GRPC_SAFE_HEADERS_LUA = """
function envoy_on_request(handle)
  local unsafe = {}
  for name, _ in pairs(handle:headers()) do
    if string.find(name, "[^%w%-_.:]") then
      unsafe[#unsafe + 1] = name
    end
  end
  for _, name in ipairs(unsafe) do
    handle:headers():remove(name)
  end
end
"""


def _grpc_safe_headers_filter() -> Json:
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": _type("filters.http.lua.v3.Lua"),
            "default_source_code": {"inline_string": GRPC_SAFE_HEADERS_LUA},
        },
    }


def load_descriptor(path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def render_config(
    http_port: int,
    admin_port: int,
    services: dict[str, tuple[str, int]],
    descriptor_path: Path | None = None,
    *,
    access_log: bool = False,
    edge: EdgeOptions | None = None,
    ratelimit: tuple[str, int] | None = None,
    tracing: tuple[str, int] | None = None,
    trace_sampling: float = 100.0,
    listen_host: str = "127.0.0.1",
    docs: bool = True,
    docs_dir: str | None = None,
) -> str:
    """Return the Envoy bootstrap as YAML.

    `services` maps a cluster name ("auth") to the host and port of its gRPC server. Public
    services whose cluster is not in `services` are left out (with a warning): their REST
    paths then answer 404 instead of Envoy refusing a route to a missing cluster.
    `ratelimit` is the host and port of the rate-limit service; None: no rate limits.
    `tracing` is the host and port of an OTLP/gRPC collector: Envoy then starts a trace for
    every request (or continues the client's `traceparent`) and passes it on to the services;
    `trace_sampling` is the percentage of requests recorded, a decision the services follow.
    `listen_host`: 127.0.0.1 on a workstation, 0.0.0.0 in a container.
    `docs`: serve /docs and /openapi.json, their bodies inlined (~2 MB: too much for a
    Kubernetes ConfigMap), or with `docs_dir` read from the files `write_docs` put there (the
    edge's image has them; the Helm chart's config refers to them).
    """
    descriptor = load_descriptor(descriptor_path or DESCRIPTOR_PATH)
    public = public_services(descriptor)
    unrouted = sorted(s.name for s in public if s.cluster not in services)
    if unrouted:
        warnings.warn(f"no cluster configured for {', '.join(unrouted)}", stacklevel=2)
    routed = [s for s in public if s.cluster in services]
    if not routed:
        raise ValueError("the descriptor set has no public service for the given clusters")
    edge = edge or EdgeOptions()

    hcm: Json = {
        "@type": _type("filters.network.http_connection_manager.v3.HttpConnectionManager"),
        "stat_prefix": "edge",
        "codec_type": "AUTO",  # HTTP/1.1 for REST clients, h2c for native gRPC clients
        "use_remote_address": True,  # we are the edge: strip client-sent x-envoy-* headers
        "normalize_path": True,
        "merge_slashes": True,
        "route_config": hardening.harden_routes(
            _route_config(routed, docs, docs_dir), edge.cors_origins
        ),
        **hardening.hcm_limits(),
        "http_filters": [
            hardening.response_headers_filter(tls=False),
            _grpc_web_filter(),
            _grpc_safe_headers_filter(),
            _health_check_filter(services),
            {
                # The transcoder streams bodies upstream (its own max_request_body_size only
                # bounds what it holds back), so the whole-body cap is the buffer filter's.
                "name": "envoy.filters.http.buffer",
                "typed_config": {
                    "@type": _type("filters.http.buffer.v3.Buffer"),
                    "max_request_bytes": MAX_BODY_BYTES,
                },
            },
            _transcoder_filter(descriptor, routed),
            # After the transcoder: CORS policies hang on routes, and REST paths only have one
            # once transcoded to their gRPC path.
            hardening.cors_filter(),
            # Before the token check: a flood is refused at its cheapest, signed in or not.
            *_rate_limit_filters(ratelimit),
            *_jwt_authn_filters(descriptor, routed, edge),
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": _type("filters.http.router.v3.Router"),
                    "suppress_envoy_headers": True,  # no x-envoy-* (upstream times) to clients
                },
            },
        ],
        "local_reply_config": _local_reply_config(),
    }
    hcm["local_reply_config"]["mappers"][:0] = hardening.unauthenticated_reply_mappers()
    if access_log:
        hcm["access_log"] = [_stdout_access_log()]
    if ratelimit is not None:
        hcm["route_config"]["virtual_hosts"][0]["rate_limits"] = _rate_limit_actions()
    if tracing is not None:
        hcm["tracing"] = _tracing(trace_sampling)

    bootstrap: Json = {
        "admin": {"address": _socket_address("127.0.0.1", admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "edge",
                    "address": _socket_address(listen_host, http_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                },
                *_tls_listeners(hcm, edge, listen_host),
            ],
            "clusters": [
                *(_cluster(name, *address) for name, address in sorted(services.items())),
                *_jwks_clusters(http_port, services),
                *_rate_limit_clusters(ratelimit),
                *_tracing_clusters(tracing),
            ],
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _type(
                            "resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
                        ),
                        "max_active_downstream_connections": MAX_CONNECTIONS,
                    },
                }
            ]
        },
    }
    return yaml.safe_dump(bootstrap, sort_keys=False)


def _jwt_authn_filters(
    descriptor: descriptor_pb2.FileDescriptorSet, routed: list[PublicService], edge: EdgeOptions
) -> list[Json]:
    # After the transcoder: its rules match gRPC paths, so REST, gRPC-Web and gRPC alike.
    # Without auth behind the edge there is no JWKS; the services still verify.
    clusters = {service.cluster for service in routed}
    if "auth" not in clusters:
        return []
    return [hardening.jwt_authn_filter(descriptor, (s.name for s in routed), edge)]


def _jwks_clusters(http_port: int, services: dict[str, tuple[str, int]]) -> list[Json]:
    return [hardening.jwks_cluster(http_port)] if "auth" in services else []


def _tls_listeners(hcm: Json, edge: EdgeOptions, listen_host: str) -> list[Json]:
    return [hardening.tls_listener(hcm, edge, listen_host)] if edge.tls else []


def _type(message: str) -> str:
    return f"type.googleapis.com/envoy.extensions.{message}"


def _socket_address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _cluster(name: str, host: str, port: int) -> Json:
    try:
        ipaddress.ip_address(host)
        discovery = "STATIC"
    except ValueError:  # a DNS name, e.g. a Kubernetes service
        discovery = "STRICT_DNS"
    return {
        "name": name,
        "type": discovery,
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "circuit_breakers": hardening.retry_budget(),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}
            ],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _type("upstreams.http.v3.HttpProtocolOptions"),
                "explicit_http_config": {"http2_protocol_options": {}},  # gRPC needs HTTP/2
            }
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "1s",
                # Without traffic Envoy would check only every 60 s; /healthz must be current.
                "no_traffic_interval": "1s",
                "unhealthy_threshold": 2,  # one lost probe is not an outage
                "healthy_threshold": 1,
                "grpc_health_check": {},  # service "" = the whole server (grpc.health.v1)
            }
        ],
    }


def _route_config(
    routed: Iterable[PublicService], docs: bool = True, docs_dir: str | None = None
) -> Json:
    # After transcoding the path is /<package>.<Service>/<Method>. Matching whole service
    # names (not the package prefix) keeps *InternalService unreachable. A gRPC or gRPC-Web
    # content type is required, so plain JSON POSTed to a gRPC path is not forwarded as-is; not
    # `grpc: {}` (gRPC only): the route is chosen before the grpc_web filter turns gRPC-Web
    # into gRPC, and that filter does not have it chosen again.
    grpc_content_type = {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    routes: list[Json] = [
        {
            "match": {"prefix": f"/{service.name}/", "headers": [grpc_content_type]},
            "route": {"cluster": service.cluster, "timeout": ROUTE_TIMEOUT},
        }
        for service in routed
    ]
    if docs:
        routes.extend(_docs_routes(docs_dir))
    # Anything else: 404, given its JSON body by the local reply mapper.
    routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404}})
    return {
        "name": "edge",
        "max_direct_response_body_size_bytes": DOCS_MAX_BODY_BYTES,
        "virtual_hosts": [{"name": "edge", "domains": ["*"], "routes": routes}],
    }


# API docs at the edge: GET /openapi.json is the committed document, GET /docs a Swagger UI page
# of it, its assets under /docs/. Envoy answers them itself (direct_response, no extra cluster
# or process to run), with the bodies inlined from the committed openapi.json and the installed
# swagger-ui-bundle (PyPI, so no npm at run time; its Swagger UI 4.x reads OpenAPI 3.0), so
# the docs can never be stale nor load anything from outside the edge.
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
DOCS_PATH = "/docs"
DOCS_ASSETS: dict[str, str] = {  # file of swagger-ui-bundle -> content type
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Route configs refuse direct_response bodies over 4 KiB unless raised; the bundle is ~1 MiB.
DOCS_MAX_BODY_BYTES = 4 * 1024 * 1024
# No inline script, so that a Content-Security-Policy without 'unsafe-inline' still allows it.
DOCS_INITIALIZER_JS = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default posts the document to an online validator: nothing may leave the page.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
"""


def docs_bodies(openapi_path: Path | None = None) -> dict[str, tuple[str, bytes]]:
    """What the edge serves for the docs: path -> (content type, body)."""
    document = (openapi_path or OPENAPI_PATH).read_bytes()
    title = html.escape(json.loads(document)["info"]["title"])
    page = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{DOCS_PATH}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/swagger-initializer.js"></script>
</body>
</html>
"""
    ui = Path(swagger_ui_bundle.swagger_ui_path)
    bodies = {
        "/openapi.json": ("application/json", document),
        DOCS_PATH: ("text/html; charset=utf-8", page.encode()),
        f"{DOCS_PATH}/swagger-initializer.js": (
            "text/javascript; charset=utf-8",
            DOCS_INITIALIZER_JS.encode(),
        ),
    }
    for name, content_type in DOCS_ASSETS.items():
        bodies[f"{DOCS_PATH}/{name}"] = (content_type, (ui / name).read_bytes())
    return bodies


def docs_file(path: str) -> str:
    """The file a docs body is kept in: /openapi.json, /docs, /docs/x.js -> openapi.json,
    index.html, x.js."""
    return "index.html" if path == DOCS_PATH else path.rsplit("/", 1)[1]


def write_docs(directory: Path) -> None:
    """The docs bodies as files, for a config rendered with `docs_dir` (the edge's image)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path, (_, body) in docs_bodies().items():
        (directory / docs_file(path)).write_bytes(body)


def _docs_routes(docs_dir: str | None) -> list[Json]:
    get_or_head = {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}
    routes = []
    for path, (content_type, body) in docs_bodies().items():
        if len(body) > DOCS_MAX_BODY_BYTES:
            raise ValueError(f"{path} is {len(body)} bytes, over DOCS_MAX_BODY_BYTES")
        # Bytes, not inline_string: the YAML round trip mangles the bundle's non-ASCII text.
        source = (
            {"filename": f"{docs_dir}/{docs_file(path)}"}
            if docs_dir
            else {"inline_bytes": base64.b64encode(body).decode()}
        )
        routes.append(
            {
                "match": {"path": path, "headers": [get_or_head]},
                "direct_response": {"status": 200, "body": source},
                "response_headers_to_add": [
                    {
                        "header": {"key": "content-type", "value": content_type},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }
                ],
            }
        )
    return routes


def _health_check_filter(services: Iterable[str]) -> Json:
    return {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": _type("filters.http.health_check.v3.HealthCheck"),
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": HEALTH_PATH}}],
            # 200 only when every host of every service cluster passes its gRPC health check.
            "cluster_min_healthy_percentages": {name: {"value": 100.0} for name in services},
        },
    }


def _grpc_web_filter() -> Json:
    # gRPC-Web (browsers, the generated TypeScript client: docs/clients.md) becomes plain gRPC
    # here, so it is routed, and *InternalService refused, as native gRPC is; the transcoder
    # passes it through. First in the chain, so that replies of the other filters (413, ...)
    # reach a gRPC-Web client as gRPC-Web.
    return {
        "name": "envoy.filters.http.grpc_web",
        "typed_config": {"@type": _type("filters.http.grpc_web.v3.GrpcWeb")},
    }


def _transcoder_filter(
    descriptor: descriptor_pb2.FileDescriptorSet, routed: Iterable[PublicService]
) -> Json:
    # Inline bytes rather than a file path: the YAML is then self-contained (no path that must
    # resolve the same way wherever Envoy runs) and can never pair with a stale descriptor.
    # Comments (source info) are dropped: Envoy does not need them and they double the size.
    slim = descriptor_pb2.FileDescriptorSet()
    slim.CopyFrom(descriptor)
    for file in slim.file:
        file.ClearField("source_code_info")
    return {
        "name": "envoy.filters.http.grpc_json_transcoder",
        "typed_config": {
            "@type": _type("filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"),
            "proto_descriptor_bin": base64.b64encode(slim.SerializeToString()).decode(),
            "services": sorted(service.name for service in routed),
            "convert_grpc_status": True,  # gRPC errors -> HTTP status + {code, message, details}
            "ignore_unknown_query_parameters": True,  # `?utm_source=x` must not be a 404
            "auto_mapping": False,  # only annotated RPCs are public
            "case_insensitive_enum_parsing": True,  # accept "order_status_paid" too
            "query_param_unescape_plus": True,  # `?q=red+shoes` as browsers send forms
            "print_options": {
                "preserve_proto_field_names": True,
                "always_print_primitive_fields": True,
                "always_print_enums_as_ints": False,
            },
        },
    }


# Replies Envoy makes itself, by HTTP status: (gRPC code, message) for the API's error body.
# Envoy's own texts are kept only where they help the client and reveal nothing internal.
LOCAL_REPLIES: dict[int, tuple[int, str]] = {
    400: (3, "%LOCAL_REPLY_BODY%"),  # the transcoder's text, e.g. "Unexpected token. ..."
    401: (16, "%LOCAL_REPLY_BODY%"),  # for jwt_authn, once it is added
    403: (7, "%LOCAL_REPLY_BODY%"),
    # Method and path as the client sent them; no query string, it may carry tokens.
    404: (5, "no route for %REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)% %PATH(NQ:ORIG_OR_PATH)%"),
    413: (3, "request body exceeds 1 MiB"),
    # Envoy's texts here name upstream hosts and socket errors.
    502: (14, "service unavailable"),
    503: (14, "service unavailable"),
    504: (4, "upstream request timeout"),
}
UNKNOWN = 2


def _local_reply_config() -> Json:
    """The API's JSON error body for local replies; responses from services pass untouched."""

    def mapper(op: str, status: int, code: int, message: str) -> Json:
        # A runtime key is mandatory here; nothing sets it, so the default always applies.
        comparison = {"op": op, "value": {"default_value": status, "runtime_key": "edge.reply"}}
        return {
            "filter": {"status_code_filter": {"comparison": comparison}},
            "body_format_override": {
                "json_format": {"code": code, "message": message, "details": []}
            },
        }

    mappers = [mapper("EQ", status, *reply) for status, reply in LOCAL_REPLIES.items()]
    mappers.append(_rate_limited_reply(mapper))
    mappers.append(mapper("GE", 400, UNKNOWN, "%LOCAL_REPLY_BODY%"))  # any other error
    return {"mappers": mappers}


# -- global rate limits (services/ratelimit) -------------------------------------------------

RATE_LIMIT_CLUSTER = "rls"
TRACING_CLUSTER = "opentelemetry_collector"
RATE_LIMIT_DOMAIN = "edge"
# The edge's wait for the rate-limit service; past it the request passes (fail open).
RATE_LIMIT_TIMEOUT = "0.25s"
# The filter sees gRPC paths (REST is transcoded first). The "auth" budget is AuthService,
# whose REST routes are /api/auth/*, except GetJwks (`/.well-known/jwks.json`, default budget).
AUTH_SERVICE = {"prefix": "/ecommerce.auth.v1.AuthService/"}
JWKS = {"exact": "/ecommerce.auth.v1.AuthService/GetJwks"}
# Never limited: Stripe's webhook (its retries must not be refused). /healthz never reaches
# the filter: the health check filter before it answers.
WEBHOOK = {"exact": "/ecommerce.payments.v1.PaymentService/HandleStripeWebhook"}


def _rate_limit_filters(ratelimit: tuple[str, int] | None) -> list[Json]:
    """Envoy's global ratelimit filter, after the transcoder; [] without a rate-limit service.

    After, not before: the filter skips a request whose route has no cluster, and before
    transcoding a REST path matches only the catch-all 404 route (routing is by gRPC path).

    Fail open (`failure_mode_deny: false`, counted as `ratelimit.failure_mode_allowed`): a
    limiter outage must not take the API down.
    """
    if ratelimit is None:
        return []
    return [
        {
            "name": "envoy.filters.http.ratelimit",
            "typed_config": {
                "@type": _type("filters.http.ratelimit.v3.RateLimit"),
                "domain": RATE_LIMIT_DOMAIN,
                "timeout": RATE_LIMIT_TIMEOUT,
                "failure_mode_deny": False,
                "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                "disable_x_envoy_ratelimited_header": True,  # names Envoy; Retry-After says it
                "rate_limited_as_resource_exhausted": True,  # gRPC clients: RESOURCE_EXHAUSTED
                "rate_limit_service": {
                    "transport_api_version": "V3",
                    "grpc_service": {"envoy_grpc": {"cluster_name": RATE_LIMIT_CLUSTER}},
                },
            },
        }
    ]


def _rate_limit_actions() -> list[Json]:
    """The virtual host's descriptors: (budget, auth|default) + (remote_address, client IP).

    By gRPC path on the virtual host (so new routes are covered too). The client IP is the
    connection's peer (`use_remote_address`, no trusted hops), never a client header.
    """

    def path(key: str, value: str, match: Json, *, expect_match: bool) -> Json:
        return {
            "header_value_match": {
                "descriptor_key": key,
                "descriptor_value": value,
                "expect_match": expect_match,
                "headers": [{"name": ":path", "string_match": match}],
            }
        }

    # An action that does not match drops its whole descriptor (one action per condition:
    # a descriptor is an AND of them): exactly one descriptor is sent for a
    # limited path, none for the webhook.
    client: Json = {"remote_address": {}}
    return [
        {
            "actions": [
                path("budget", "auth", AUTH_SERVICE, expect_match=True),
                path("jwks", "no", JWKS, expect_match=False),
                client,
            ]
        },
        {
            "actions": [
                path("budget", "default", AUTH_SERVICE, expect_match=False),
                path("exempt", "no", WEBHOOK, expect_match=False),
                client,
            ]
        },
        {"actions": [path("budget", "default", JWKS, expect_match=True), client]},
    ]


def _rate_limit_clusters(ratelimit: tuple[str, int] | None) -> list[Json]:
    return [] if ratelimit is None else [_cluster(RATE_LIMIT_CLUSTER, *ratelimit)]


def _tracing(sampling: float) -> Json:
    # The head decision for the whole trace: every span below follows it (ParentBased).
    return {
        "random_sampling": {"value": sampling},
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {
                    "envoy_grpc": {"cluster_name": TRACING_CLUSTER},
                    "timeout": "1s",
                },
                "service_name": "edge",
            },
        },
        "spawn_upstream_span": True,  # a client span per call to a service, as the SDKs make
    }


def _tracing_clusters(tracing: tuple[str, int] | None) -> list[Json]:
    if tracing is None:
        return []
    cluster = _cluster(TRACING_CLUSTER, *tracing)
    del cluster["health_checks"]  # a collector need not serve grpc.health.v1
    return [cluster]


def _rate_limited_reply(mapper: Callable[[str, int, int, str], Json]) -> Json:
    """429 with the API's error body and an ErrorInfo detail, reason RATE_LIMITED."""
    reply: Json = mapper("EQ", 429, 8, "too many requests: retry after the Retry-After seconds")
    reply["body_format_override"]["json_format"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMITED",
            "domain": "ecommerce",
            "metadata": {},
        }
    ]
    return reply


def _stdout_access_log() -> Json:
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": _type("access_loggers.stream.v3.StdoutAccessLog"),
            "log_format": {
                "json_format": {
                    "time": "%START_TIME%",
                    # As the client sent them (the transcoder rewrites both); no query string.
                    "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
                    "path": "%PATH(NQ:ORIG_OR_PATH)%",
                    "status": "%RESPONSE_CODE%",
                    "duration_ms": "%DURATION%",
                    "upstream_cluster": "%UPSTREAM_CLUSTER%",
                    "traceparent": "%REQ(TRACEPARENT)%",
                },
                "omit_empty_values": True,  # no "traceparent": null when absent
            },
        },
    }


def _parse_service(text: str) -> tuple[str, tuple[str, int]]:
    name, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not (sep and colon and name and host and port.isdigit()):
        raise argparse.ArgumentTypeError(f"expected NAME=HOST:PORT, got {text!r}")
    return name, (host, int(port))


def _parse_address(text: str) -> tuple[str, int]:
    return _parse_service(f"ratelimit={text}")[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the Envoy edge config (YAML) to stdout.")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument(
        "--service", type=_parse_service, action="append", required=True, metavar="NAME=HOST:PORT"
    )
    parser.add_argument("--descriptor", type=Path, help="descriptor set (default: the bundled one)")
    parser.add_argument("--access-log", action="store_true", help="JSON access log to stdout")
    parser.add_argument(
        "--ratelimit", type=_parse_address, metavar="HOST:PORT", help="rate-limit service"
    )
    parser.add_argument(
        "--otlp", type=_parse_address, metavar="HOST:PORT", help="OTLP/gRPC trace collector"
    )
    parser.add_argument(
        "--trace-sampling", type=float, default=100.0, help="%% of requests traced (100)"
    )
    parser.add_argument(
        "--listen-host", default="127.0.0.1", help="listener address (0.0.0.0 in a container)"
    )
    parser.add_argument("--no-docs", action="store_true", help="without /docs and /openapi.json")
    parser.add_argument(
        "--docs-dir", help="serve the docs from files in this folder instead of inlining them"
    )
    parser.add_argument("--write-docs", type=Path, metavar="DIR", help="write those files here")
    args = parser.parse_args(argv)
    sys.stdout.write(
        render_config(
            args.http_port,
            args.admin_port,
            dict(args.service),
            args.descriptor,
            access_log=args.access_log,
            edge=EdgeOptions.from_env(),  # EDGE_* settings, see ecom_gateway.hardening
            ratelimit=args.ratelimit,
            tracing=args.otlp,
            trace_sampling=args.trace_sampling,
            listen_host=args.listen_host,
            docs=not args.no_docs,
            docs_dir=args.docs_dir,
        )
    )
    if args.write_docs:
        write_docs(args.write_docs)


if __name__ == "__main__":
    main()
