{{/*
Facts of the code, not choices of a deployment: each service's gRPC port (its default
GRPC_PORT), whether it has a database (and so migrations, and the internal-RPC credential of ecom_runtime.server.App), whom it calls and what it uses. `calls` is the call
graph the NetworkPolicies follow: every service with a database verifies tokens and API keys
at auth (ecom_runtime.server.App), cart prices carts at catalog, the checkout in orders calls
catalog, cart and payments. The edge calls the six public services and ratelimit.
*/}}
{{- define "ecommerce.facts" -}}
auth: {port: 50051, database: true, public: true, calls: [], uses: [postgresql, nats]}
catalog: {port: 50052, database: true, public: true, calls: [auth], uses: [postgresql, nats, redis, s3, elasticsearch]}
cart: {port: 50053, database: true, public: true, calls: [auth, catalog], uses: [postgresql, nats]}
orders: {port: 50054, database: true, public: true, calls: [auth, catalog, cart, payments], uses: [postgresql, nats, s3]}
payments: {port: 50055, database: true, public: true, calls: [auth], uses: [postgresql, nats, stripe]}
notifications: {port: 50056, database: true, public: true, calls: [auth], uses: [postgresql, nats, email]}
ratelimit: {port: 50057, database: false, public: false, calls: [], uses: [redis]}
{{- end -}}

{{- define "ecommerce.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: ecommerce
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "ecommerce.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* A deployable's settings: `defaults` with its own block (services.<name> or edge) over them. */}}
{{- define "ecommerce.settings" -}}
{{- $own := ternary .root.Values.edge (index .root.Values.services .name | default dict) (eq .name "edge") -}}
{{- mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $own) | toYaml -}}
{{- end -}}

{{- define "ecommerce.image" -}}
{{- $image := .root.Values.image -}}
{{- $repository := printf "ecom-%s" (ternary "gateway" .name (eq .name "edge")) -}}
{{- with $image.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end -}}
{{- printf "%s:%s" $repository (toString ($image.tag | default .root.Chart.AppVersion)) -}}
{{- end -}}

{{/* The address other pods reach a service at: the Service's name in the release namespace. */}}
{{- define "ecommerce.host" -}}
{{- printf "%s.%s.svc.%s" .name .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{- define "ecommerce.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ecommerce.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A Secret's key as an environment variable: (list root NAME SECRET KEY). */}}
{{- define "ecommerce.secretEnv" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 2 }}
      key: {{ index . 3 }}
{{- end -}}

{{/* DATABASE_URL from values, its user and password from the Secret ($(VAR) expansion). */}}
{{- define "ecommerce.databaseEnv" -}}
{{- $pg := .Values.postgresql -}}
{{ include "ecommerce.secretEnv" (list . "DATABASE_USER" $pg.existingSecret $pg.userKey) }}
{{ include "ecommerce.secretEnv" (list . "DATABASE_PASSWORD" $pg.existingSecret $pg.passwordKey) }}
- name: DATABASE_URL
  value: {{ printf "postgresql+psycopg://$(DATABASE_USER):$(DATABASE_PASSWORD)@%s:%v/%s" $pg.host $pg.port $pg.database }}{{ with $pg.options }}?{{ . }}{{ end }}
{{- end -}}

{{/* The environment of one service: (dict "root" $ "name" NAME "facts" FACTS "settings" S). */}}
{{- define "ecommerce.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $uses := .facts.uses -}}
- name: GRPC_HOST
  value: 0.0.0.0
- name: GRPC_PORT
  value: {{ .facts.port | quote }}
- name: LOG_LEVEL
  value: {{ .settings.logLevel | quote }}
- name: LOG_FORMAT
  value: json
{{- with $v.telemetry.otlp.host }}
- name: OTEL_SERVICE_NAME
  value: {{ $.name }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ printf "http://%s:%v" . $v.telemetry.otlp.port }}
{{- end }}
{{- range .facts.calls }}
- name: {{ upper . }}_GRPC_ADDR
  value: {{ include "ecommerce.host" (dict "root" $root "name" .) }}:{{ (index (include "ecommerce.facts" $root | fromYaml) .).port }}
{{- end }}
{{- if .facts.database }}
{{ include "ecommerce.secretEnv" (list $root "SERVICE_CREDENTIALS" $v.serviceCredentials.existingSecret $v.serviceCredentials.key) }}
{{ include "ecommerce.databaseEnv" $root }}
{{- end }}
{{- if has "nats" $uses }}
{{- with $v.nats }}
{{- if .existingSecret }}
{{ include "ecommerce.secretEnv" (list $root "NATS_USER" .existingSecret .userKey) }}
{{ include "ecommerce.secretEnv" (list $root "NATS_PASSWORD" .existingSecret .passwordKey) }}
{{- end }}
- name: NATS_URL
  value: {{ ternary "tls" "nats" .tls }}://{{ if .existingSecret }}$(NATS_USER):$(NATS_PASSWORD)@{{ end }}{{ .host }}:{{ .port }}
{{- end }}
{{- end }}
{{- if has "redis" $uses }}
{{- with $v.redis }}
{{- if .existingSecret }}
{{ include "ecommerce.secretEnv" (list $root "REDIS_PASSWORD" .existingSecret .passwordKey) }}
{{- end }}
- name: REDIS_URL
  value: {{ ternary "rediss" "redis" .tls }}://{{ if .existingSecret }}:$(REDIS_PASSWORD)@{{ end }}{{ .host }}:{{ .port }}/{{ .db }}
{{- end }}
{{- end }}
{{- if and (has "elasticsearch" $uses) }}
- name: CATALOG_SEARCH_BACKEND
  value: {{ $v.search.backend }}
{{- if eq $v.search.backend "elasticsearch" }}
{{- with $v.search.elasticsearch }}
{{- if .existingSecret }}
{{ include "ecommerce.secretEnv" (list $root "ELASTICSEARCH_USER" .existingSecret .userKey) }}
{{ include "ecommerce.secretEnv" (list $root "ELASTICSEARCH_PASSWORD" .existingSecret .passwordKey) }}
- name: ELASTICSEARCH_URL
  value: {{ regexReplaceAll "^(https?://)" .url "${1}$(ELASTICSEARCH_USER):$(ELASTICSEARCH_PASSWORD)@" }}
{{- else }}
- name: ELASTICSEARCH_URL
  value: {{ .url | quote }}
{{- end }}
- name: ELASTICSEARCH_INDEX
  value: {{ .index | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if has "s3" $uses }}
{{- with $v.s3 }}
- name: S3_ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
- name: S3_REGION
  value: {{ .region | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .region | quote }}
{{- if eq $.name "catalog" }}
- name: S3_BUCKET
  value: {{ .imagesBucket | quote }}
- name: CATALOG_IMAGE_BASE_URL
  value: {{ .imageBaseUrl | quote }}
{{- else }}
- name: ORDERS_REPORTS_BUCKET
  value: {{ .reportsBucket | quote }}
{{- end }}
{{- if .existingSecret }}
{{ include "ecommerce.secretEnv" (list $root "AWS_ACCESS_KEY_ID" .existingSecret .accessKeyIdKey) }}
{{ include "ecommerce.secretEnv" (list $root "AWS_SECRET_ACCESS_KEY" .existingSecret .secretAccessKeyKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- if has "stripe" $uses }}
{{- with $v.stripe }}
- name: STRIPE_API_BASE
  value: {{ .apiBase | quote }}
{{- if .existingSecret }}
{{ include "ecommerce.secretEnv" (list $root "STRIPE_API_KEY" .existingSecret .apiKeyKey) }}
{{ include "ecommerce.secretEnv" (list $root "STRIPE_WEBHOOK_SECRET" .existingSecret .webhookSecretKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- if has "email" $uses }}
{{- with $v.email }}
- name: NOTIFICATIONS_EMAIL_BACKEND
  value: {{ .backend }}
- name: EMAIL_FROM
  value: {{ .from | quote }}
- name: NOTIFICATIONS_PASSWORD_RESET_URL
  value: {{ .passwordResetUrl | quote }}
{{- if eq .backend "sendgrid" }}
- name: SENDGRID_API_HOST
  value: {{ .sendgrid.apiHost | quote }}
{{ include "ecommerce.secretEnv" (list $root "SENDGRID_API_KEY" .sendgrid.existingSecret .sendgrid.apiKeyKey) }}
{{- else }}
- name: SMTP_HOST
  value: {{ .smtp.host | quote }}
- name: SMTP_PORT
  value: {{ .smtp.port | quote }}
- name: SMTP_STARTTLS
  value: {{ .smtp.starttls | quote }}
{{- if .smtp.existingSecret }}
{{ include "ecommerce.secretEnv" (list $root "SMTP_USERNAME" .smtp.existingSecret .smtp.userKey) }}
{{ include "ecommerce.secretEnv" (list $root "SMTP_PASSWORD" .smtp.existingSecret .smtp.passwordKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq .name "auth" }}
- name: AUTH_JWT_PRIVATE_KEY_FILE
  value: /etc/ecommerce/jwt/{{ $v.auth.jwtKey }}
- name: AUTH_JWT_PUBLISHED_KEYS_FILE
  value: /etc/ecommerce/jwt/{{ $v.auth.publishedKeysKey }}
{{- with $v.auth.adminSecret }}
{{ include "ecommerce.secretEnv" (list $root "AUTH_ADMIN_EMAIL" . "email") }}
{{ include "ecommerce.secretEnv" (list $root "AUTH_ADMIN_PASSWORD" . "password") }}
{{- end }}
{{- end }}
{{- range $key, $value := .settings.env }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* HorizontalPodAutoscaler, PodDisruptionBudget and Service of one deployable:
(dict "root" $ "name" NAME "port" PORT "portName" grpc|http "settings" S "service" {type...}). */}}
{{- define "ecommerce.scaling" -}}
{{- $labels := include "ecommerce.labels" . -}}
{{- $selector := include "ecommerce.selectorLabels" . -}}
{{- $service := .service | default dict -}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- $labels | nindent 4 }}
  {{- with $service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $service.type | default "ClusterIP" }}
  {{- with $service.externalTrafficPolicy }}
  externalTrafficPolicy: {{ . }}
  {{- end }}
  selector:
    {{- $selector | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ $service.port | default .port }}
      targetPort: {{ .portName }}
      {{- if eq .portName "grpc" }}
      appProtocol: grpc
      {{- end }}
{{- if .settings.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ .settings.autoscaling.minReplicas }}
  maxReplicas: {{ .settings.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .settings.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  {{- toYaml .settings.pdb | nindent 2 }}
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
{{- end -}}

{{/* Ports of a dependency outside the release: its own setting, else networkPolicy.egress.<dep>.ports. */}}
{{- define "ecommerce.dependencyPorts" -}}
{{- $v := .root.Values -}}
{{- $own := dict "postgresql" $v.postgresql.port "redis" $v.redis.port "nats" $v.nats.port "smtp" $v.email.smtp.port "otlp" $v.telemetry.otlp.port -}}
{{- if hasKey $own .dep }}{{ list (get $own .dep) | toJson }}{{ else }}{{ (index $v.networkPolicy.egress .dep).ports | toJson }}{{ end -}}
{{- end -}}

{{/* The NetworkPolicy of one deployable: ingress on its port from `callers` (pod names; empty
list with `anyone`: from anywhere), egress to DNS, to `calls` and to the dependencies `uses`.
(dict "root" $ "name" NAME "port" PORT "callers" LIST "anyone" BOOL "calls" LIST "uses" LIST "from" PEERS) */}}
{{- define "ecommerce.networkPolicy" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $facts := include "ecommerce.facts" $root | fromYaml -}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .name }}
  labels:
    {{- include "ecommerce.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "ecommerce.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - ports:
        - port: {{ .port }}
          protocol: TCP
      {{- if .anyone }}
      {{- with .from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- else }}
      from:
        {{- range .callers }}
        - podSelector:
            matchLabels:
              {{- include "ecommerce.selectorLabels" (dict "root" $root "name" .) | nindent 14 }}
        {{- end }}
      {{- end }}
  egress:
    - to:
        {{- toYaml $v.networkPolicy.dns | nindent 8 }}
      ports:
        - {port: 53, protocol: UDP}
        - {port: 53, protocol: TCP}
    {{- range .calls }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "ecommerce.selectorLabels" (dict "root" $root "name" .) | nindent 14 }}
      ports:
        - {port: {{ (index $facts .).port }}, protocol: TCP}
    {{- end }}
    {{- range .uses }}
    - to:
        {{- toYaml (index $v.networkPolicy.egress .).to | nindent 8 }}
      ports:
        {{- range include "ecommerce.dependencyPorts" (dict "root" $root "dep" .) | fromJsonArray }}
        - {port: {{ . }}, protocol: TCP}
        {{- end }}
    {{- end }}
{{- end -}}

{{/* The external dependencies one service reaches, as networkPolicy.egress keys. */}}
{{- define "ecommerce.externalUses" -}}
{{- $v := .root.Values -}}
{{- $out := list -}}
{{- range .uses -}}
{{- if eq . "email" -}}
{{- $out = append $out (ternary "sendgrid" "smtp" (eq $v.email.backend "sendgrid")) -}}
{{- else if eq . "elasticsearch" -}}
{{- if eq $v.search.backend "elasticsearch" }}{{ $out = append $out . }}{{ end -}}
{{- else -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- if $v.telemetry.otlp.host }}{{ $out = append $out "otlp" }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* What every Deployment's pod spec shares: (dict "root" $ "name" NAME "settings" S). */}}
{{- define "ecommerce.podCommon" -}}
serviceAccountName: {{ .root.Values.serviceAccount.name }}
# The pods never call the Kubernetes API (an IRSA token is projected separately).
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ .settings.terminationGracePeriodSeconds }}
securityContext:
  {{- include "ecommerce.podSecurityContext" .root | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Replicas on different nodes where the scheduler can.
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "ecommerce.selectorLabels" . | nindent 8 }}
{{- range $field := list "nodeSelector" "tolerations" "affinity" }}
{{- with index $.settings $field }}
{{ $field }}:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}
