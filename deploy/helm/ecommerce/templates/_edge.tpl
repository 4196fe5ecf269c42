{{/*
The edge's Envoy config: files/envoy.yaml (`make helm-config`, ecom_stack.helm) with what the
release decides set in it, as the generator would render it (deploy/tests/test_helm_chart.py
compares): each cluster's address in the release namespace, the CORS origins, the access log,
and tracing to telemetry.otlp (sampling telemetry.samplingPercent of requests) or none.
*/}}
{{- define "ecommerce.edgeConfig" -}}
{{- $root := . -}}
{{- $v := .Values -}}
{{- $facts := include "ecommerce.facts" . | fromYaml -}}
{{- $config := .Files.Get "files/envoy.yaml" | fromYaml -}}
{{- $hcm := (index $config.static_resources.listeners 0 "filter_chains" 0 "filters" 0).typed_config -}}
{{- $cors := index (index $hcm.route_config.virtual_hosts 0).typed_per_filter_config "envoy.filters.http.cors" -}}
{{- $origins := list -}}
{{- range $v.edge.corsOrigins }}{{ $origins = append $origins (dict "exact" .) }}{{ end -}}
{{- $_ := set $cors "allow_origin_string_match" $origins -}}
{{- if not $v.edge.accessLog }}{{ $_ := unset $hcm "access_log" }}{{ end -}}
{{- if $v.telemetry.otlp.host }}
{{- $_ := set $hcm.tracing.random_sampling "value" $v.telemetry.samplingPercent }}
{{- else }}{{ $_ := unset $hcm "tracing" }}{{ end -}}
{{- $clusters := list -}}
{{- range $config.static_resources.clusters -}}
{{- $address := index .load_assignment.endpoints 0 "lb_endpoints" 0 "endpoint" "address" "socket_address" -}}
{{- $service := ternary "ratelimit" .name (eq .name "rls") -}}
{{- if hasKey $facts $service -}}
{{- $_ := set $address "address" (include "ecommerce.host" (dict "root" $root "name" $service)) -}}
{{- $_ := set $address "port_value" (index $facts $service).port -}}
{{- else if eq .name "opentelemetry_collector" -}}
{{- $_ := set $address "address" $v.telemetry.otlp.host -}}
{{- $_ := set $address "port_value" $v.telemetry.otlp.port -}}
{{- end -}}
{{- if or (ne .name "opentelemetry_collector") $v.telemetry.otlp.host -}}
{{- $clusters = append $clusters . -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config.static_resources "clusters" $clusters -}}
{{- toYaml $config -}}
{{- end -}}
