"""The edge's hardening, rendered into the bootstrap by `envoy.render_config`.

- JWT: `jwt_authn` verifies access tokens against auth's JWKS. Who needs one comes from
  `openapi.access`, the one place that classifies RPCs. It runs after the transcoder, so it
  matches gRPC paths (`/<package>.<Service>/<Method>`): REST, gRPC-Web and native gRPC alike.
  Services keep verifying (roles, revocation): the edge only turns away what cannot pass.
- CORS for configured origins only; security headers on every reply, Envoy's own included.
- Timeouts and HTTP/2 limits; retries of idempotent REST reads only.
- An optional TLS listener (HSTS there only).

Settings (environment): EDGE_CORS_ORIGINS, EDGE_TLS_PORT, EDGE_TLS_CERT_FILE,
EDGE_TLS_KEY_FILE; JWT_ISSUER and JWT_AUDIENCE as the services read them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

Json = dict[str, Any]

JWT_PROVIDER = "auth"
JWKS_PATH = "/.well-known/jwks.json"
JWKS_CLUSTER = "edge_jwks"  # the edge itself: JWKS is a transcoded RPC of auth
JWKS_CACHE = "300s"  # as long as the services cache it (ecom_runtime.auth)
ERROR_DOMAIN = "ecommerce"  # ecom_runtime.errors.ERROR_DOMAIN (gateway does not depend on it)
API_KEY_HEADER = "x-api-key"

# Timeouts and limits of downstream connections.
REQUEST_HEADERS_TIMEOUT = "10s"  # slowloris: headers dribbled in byte by byte
REQUEST_TIMEOUT = "30s"  # the whole request received (the route timeout bounds the reply)
STREAM_IDLE_TIMEOUT = "60s"
CONNECTION_IDLE_TIMEOUT = "300s"
MAX_REQUEST_HEADERS_KB = 32
MAX_CONCURRENT_STREAMS = 100
INITIAL_STREAM_WINDOW = 64 * 1024
INITIAL_CONNECTION_WINDOW = 1024 * 1024
RETRIES = 2  # idempotent REST reads only; bounded per cluster by RETRY_BUDGET_PERCENT
RETRY_BUDGET_PERCENT = 20.0
# RPCs whose replies carry tokens or secrets: never cached anywhere.
NO_STORE_RPCS = (
    "ecommerce.auth.v1.AuthService/Register",
    "ecommerce.auth.v1.AuthService/Login",
    "ecommerce.auth.v1.AuthService/Refresh",
    "ecommerce.auth.v1.AuthService/CreateApiKey",
)

CORS_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_ALLOW_HEADERS = (
    "authorization, x-api-key, idempotency-key, x-cart-token, content-type, "
    "x-grpc-web, x-user-agent, grpc-timeout, traceparent"
)
CORS_EXPOSE_HEADERS = (
    "x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after, "
    "grpc-status, grpc-message, grpc-status-details-bin"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
HSTS = "max-age=31536000; includeSubDomains"


@dataclass(frozen=True)
class EdgeOptions:
    cors_origins: tuple[str, ...] = ()  # exact origins, e.g. "https://shop.example"
    tls_port: int | None = None  # with cert and key files: an HTTPS listener beside HTTP
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    jwt_issuer: str = "ecommerce-auth"
    jwt_audience: str = "ecommerce"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> EdgeOptions:
        origins = environ.get("EDGE_CORS_ORIGINS", "")
        port = environ.get("EDGE_TLS_PORT", "").strip()
        cert = environ.get("EDGE_TLS_CERT_FILE", "").strip()
        key = environ.get("EDGE_TLS_KEY_FILE", "").strip()
        if bool(cert) != bool(key) or (port and not cert):
            raise ValueError("EDGE_TLS_PORT needs both EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE")
        return cls(
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            tls_port=int(port) if port else (8443 if cert else None),
            tls_cert_file=Path(cert) if cert else None,
            tls_key_file=Path(key) if key else None,
            jwt_issuer=environ.get("JWT_ISSUER", cls.jwt_issuer),
            jwt_audience=environ.get("JWT_AUDIENCE", cls.jwt_audience),
        )

    @property
    def tls(self) -> bool:
        return bool(self.tls_port and self.tls_cert_file and self.tls_key_file)


def _type(message: str) -> str:
    return f"type.googleapis.com/envoy.extensions.{message}"


# --- JWT ---------------------------------------------------------------------------------


def jwt_rules(descriptor: descriptor_pb2.FileDescriptorSet, services: Iterable[str]) -> list[Json]:
    """One rule per RPC that needs credentials, from openapi.access; public RPCs have none."""
    from ecom_gateway.openapi import Access, Protos, access  # openapi imports envoy

    jwt = {"provider_name": JWT_PROVIDER}
    jwt_or_none = {"requires_any": {"requirements": [jwt, {"allow_missing": {}}]}}
    protos = Protos(descriptor)
    routed = set(services)
    rules: list[Json] = []
    seen: set[str] = set()
    for route in protos.routes(descriptor):
        rpc = route.rpc
        path = f"/{rpc.service}/{rpc.method.name}"
        if rpc.service not in routed or path in seen:
            continue
        seen.add(path)
        level = access(protos, rpc)
        if level is Access.USER:
            rules.append({"match": {"path": path}, "requires": jwt})
        elif level is Access.USER_OR_GUEST:  # a bad token is refused, none is a guest
            rules.append({"match": {"path": path}, "requires": jwt_or_none})
        elif level is Access.ADMIN:
            # An API key is checked by the services; a token sent beside it must still be valid.
            with_key = {"path": path, "headers": [{"name": API_KEY_HEADER, "present_match": True}]}
            rules.append({"match": with_key, "requires": jwt_or_none})
            rules.append({"match": {"path": path}, "requires": jwt})
    return rules


def jwt_authn_filter(
    descriptor: descriptor_pb2.FileDescriptorSet, services: Iterable[str], options: EdgeOptions
) -> Json:
    provider = {
        "issuer": options.jwt_issuer,
        "audiences": [options.jwt_audience],
        "remote_jwks": {
            "http_uri": {
                # Host and port only matter to the cluster; the path is auth's GetJwks route.
                "uri": f"http://edge{JWKS_PATH}",
                "cluster": JWKS_CLUSTER,
                "timeout": "2s",
            },
            # Keys rotate: fetched in the background at start and every cache period; a failed
            # fetch is retried after 1 s, so an edge started before auth recovers quickly.
            "cache_duration": JWKS_CACHE,
            "async_fetch": {"failed_refetch_duration": "1s"},
            "retry_policy": {"num_retries": 2},
        },
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "forward": True,  # the services verify it again (roles, revocation)
        "clock_skew_seconds": 30,
    }
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": _type("filters.http.jwt_authn.v3.JwtAuthentication"),
            "providers": {JWT_PROVIDER: provider},
            "rules": jwt_rules(descriptor, services),
        },
    }


def jwks_cluster(http_port: int) -> Json:
    """The edge's own plain-HTTP listener: GetJwks is public, so this never recurses."""
    return {
        "name": JWKS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": "127.0.0.1",
                                        "port_value": http_port,
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def unauthenticated_reply_mappers() -> list[Json]:
    """jwt_authn's refusals as 401 in the API's error shape, with the services' reasons.

    Matched by the reply's details, so no other 401 or 403 is touched; a wrong audience (403
    from jwt_authn) is a 401 TOKEN_INVALID, as the services answer it.
    """

    def cel(expression: str) -> Json:
        return {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": _type("access_loggers.filters.cel.v3.ExpressionFilter"),
                    "expression": expression,
                },
            }
        }

    def mapper(reason: str, message: str, *also: Json) -> Json:
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": ERROR_DOMAIN,
            "metadata": {},
        }
        return {
            "filter": {"and_filter": {"filters": [denied, *also]}} if also else denied,
            "status_code": 401,
            # A marker that the edge, not a service, refused the call.
            "headers_to_add": [{"header": {"key": "x-edge-auth", "value": "denied"}}],
            "body_format_override": {
                "json_format": {"code": 16, "message": message, "details": [info]}
            },
        }

    denied = cel("response.code_details.startsWith('jwt_authn_access_denied')")
    token_sent = {"header_filter": {"header": {"name": "authorization", "present_match": True}}}
    expired = cel("response.code_details.contains('Jwt_is_expired')")
    return [
        mapper("TOKEN_EXPIRED", "access token expired: refresh it", token_sent, expired),
        mapper("TOKEN_INVALID", "access token invalid", token_sent),
        mapper("SIGN_IN_REQUIRED", "sign in required: send Authorization: Bearer <token>"),
    ]


# --- Response headers and CORS -----------------------------------------------------------


def cors_filter() -> Json:
    return {
        "name": "envoy.filters.http.cors",
        "typed_config": {"@type": _type("filters.http.cors.v3.Cors")},
    }


def cors_policy(origins: Iterable[str]) -> Json:
    """Per virtual host; with no origins, no CORS header is ever sent."""
    return {
        "@type": _type("filters.http.cors.v3.CorsPolicy"),
        "allow_origin_string_match": [{"exact": origin} for origin in origins],
        "allow_methods": CORS_ALLOW_METHODS,
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS,
        "max_age": "600",
        "allow_credentials": False,  # bearer tokens, no cookies
        "forward_not_matching_preflights": False,  # unknown origins: answered, never forwarded
    }


def response_headers_filter(tls: bool) -> Json:
    """First in the chain, so Envoy's own replies (401, 404, 413, ...) get the headers too."""
    headers = dict(SECURITY_HEADERS)
    if tls:  # HSTS over plain HTTP is ignored by browsers and wrong behind a TLS proxy
        headers["strict-transport-security"] = HSTS
    mutations: list[Json] = [
        {
            "append": {
                "header": {"key": k, "value": v},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        }
        for k, v in headers.items()
    ]
    mutations.append({"remove": "server"})  # names the software: no use to clients
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": _type("filters.http.header_mutation.v3.HeaderMutation"),
            "mutations": {"response_mutations": mutations},
        },
    }


# --- Connection limits, routes and clusters ----------------------------------------------


def hcm_limits() -> Json:
    return {
        "server_header_transformation": "PASS_THROUGH",  # Envoy adds no `server: envoy`
        "request_headers_timeout": REQUEST_HEADERS_TIMEOUT,
        "request_timeout": REQUEST_TIMEOUT,
        "stream_idle_timeout": STREAM_IDLE_TIMEOUT,
        "max_request_headers_kb": MAX_REQUEST_HEADERS_KB,
        "common_http_protocol_options": {"idle_timeout": CONNECTION_IDLE_TIMEOUT},
        "http2_protocol_options": {
            "max_concurrent_streams": MAX_CONCURRENT_STREAMS,
            "initial_stream_window_size": INITIAL_STREAM_WINDOW,
            "initial_connection_window_size": INITIAL_CONNECTION_WINDOW,
        },
    }


def harden_routes(route_config: Json, cors_origins: Iterable[str]) -> Json:
    """Adds, before each service route, variants that differ only in what they add:
    `Cache-Control: no-store` for token-carrying RPCs, retries for REST GETs."""
    host = route_config["virtual_hosts"][0]
    routes: list[Json] = []
    for route in host["routes"]:
        prefix = route["match"].get("prefix", "/")
        if "route" in route and prefix != "/":
            for rpc in NO_STORE_RPCS:
                if f"/{rpc}".startswith(prefix):
                    no_store = copy.deepcopy(route)
                    no_store["match"] = {**route["match"], "path": f"/{rpc}"}
                    del no_store["match"]["prefix"]
                    no_store["response_headers_to_add"] = [
                        {"header": {"key": "cache-control", "value": "no-store"}}
                    ]
                    routes.append(no_store)
            # The transcoder records the REST method; gRPC calls are all POST: not retried.
            read = copy.deepcopy(route)
            get = {"name": "x-envoy-original-method", "string_match": {"exact": "GET"}}
            read["match"]["headers"] = [*route["match"].get("headers", []), get]
            read["route"]["retry_policy"] = {
                "retry_on": "unavailable,connect-failure,reset",
                "num_retries": RETRIES,
            }
            routes.append(read)
        elif "direct_response" in route and prefix == "/":
            # The CORS filter ignores direct responses: preflights need a forwarding route. The
            # filter answers every one itself (forward_not_matching_preflights), so the cluster
            # named here is never called.
            preflight = [
                {"name": ":method", "string_match": {"exact": "OPTIONS"}},
                {"name": "access-control-request-method", "present_match": True},
            ]
            cluster = next(r["route"]["cluster"] for r in host["routes"] if "route" in r)
            routes.append(
                {"match": {"prefix": "/", "headers": preflight}, "route": {"cluster": cluster}}
            )
        routes.append(route)
    host["routes"] = routes
    host["typed_per_filter_config"] = {"envoy.filters.http.cors": cors_policy(cors_origins)}
    return route_config


def retry_budget() -> Json:
    # Retries may add at most 20 % to a cluster's active requests (at least 3 at once).
    return {
        "thresholds": [
            {
                "retry_budget": {
                    "budget_percent": {"value": RETRY_BUDGET_PERCENT},
                    "min_retry_concurrency": 3,
                }
            }
        ]
    }


def tls_listener(hcm: Json, options: EdgeOptions, host: str) -> Json:
    """The same HTTP connection manager behind TLS, with HSTS added."""
    assert options.tls_port and options.tls_cert_file and options.tls_key_file
    tls_hcm = copy.deepcopy(hcm)
    tls_hcm["stat_prefix"] = "edge_tls"
    filters = tls_hcm["http_filters"]
    index = next(i for i, f in enumerate(filters) if f["name"].endswith("header_mutation"))
    filters[index] = response_headers_filter(tls=True)
    return {
        "name": "edge_tls",
        "address": {"socket_address": {"address": host, "port_value": options.tls_port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": tls_hcm,
                    }
                ],
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": _type("transport_sockets.tls.v3.DownstreamTlsContext"),
                        "common_tls_context": {
                            "alpn_protocols": ["h2", "http/1.1"],
                            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                            "tls_certificates": [
                                {
                                    "certificate_chain": {"filename": str(options.tls_cert_file)},
                                    "private_key": {"filename": str(options.tls_key_file)},
                                }
                            ],
                        },
                    },
                },
            }
        ],
    }
