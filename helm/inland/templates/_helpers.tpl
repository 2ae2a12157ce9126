{{/* Names, labels and the pieces every service shares. */}}

{{- define "inland.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; service resources are "<fullname>-<service>". */}}
{{- define "inland.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "inland.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inland.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inland.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels of every object; pass the root context. */}}
{{- define "inland.labels" -}}
helm.sh/chart: {{ include "inland.chart" . }}
app.kubernetes.io/name: {{ include "inland.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: inland
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one service: (dict "root" $ "name" "gateway"). */}}
{{- define "inland.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inland.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Labels of one service's objects: (dict "root" $ "name" "gateway"). */}}
{{- define "inland.componentLabels" -}}
{{ include "inland.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "inland.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The zone file's source: "configMap" or "secret", and its name. */}}
{{- define "inland.zonesVolume" -}}
{{- $z := .Values.geofence.zones }}
{{- if $z.geojson }}
configMap:
  name: {{ include "inland.fullname" . }}-zones
  items:
    - key: zones.geojson
      path: zones.geojson
{{- else if $z.existingSecret }}
secret:
  secretName: {{ $z.existingSecret }}
  defaultMode: 0440
  items:
    - key: {{ $z.key }}
      path: zones.geojson
{{- else }}
configMap:
  name: {{ $z.existingConfigMap }}
  items:
    - key: {{ $z.key }}
      path: zones.geojson
{{- end }}
{{- end }}

{{/*
Non-secret librdkafka properties, written to inland.toml as [kafka.properties]: the
chart's (security protocol, SASL mechanism and user, certificate paths) over
kafka.properties. The SASL password is an environment variable (inland.kafkaEnv).
*/}}
{{- define "inland.kafkaProperties" -}}
{{- $k := .Values.kafka }}
{{- $p := deepCopy $k.properties }}
{{- $_ := set $p "security.protocol" $k.securityProtocol }}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
{{- $_ := set $p "sasl.mechanism" $k.sasl.mechanism }}
{{- $_ := set $p "sasl.username" $k.sasl.username }}
{{- end }}
{{- if $k.tls.caSecret.name }}
{{- $_ := set $p "ssl.ca.location" "/etc/inland/kafka-ca/ca.crt" }}
{{- end }}
{{- if $k.tls.clientCertSecret.name }}
{{- $_ := set $p "ssl.certificate.location" "/etc/inland/kafka-client/tls.crt" }}
{{- $_ := set $p "ssl.key.location" "/etc/inland/kafka-client/tls.key" }}
{{- end }}
{{- toYaml $p }}
{{- end }}

{{/* inland.toml: .Values.config with [kafka.properties] merged in. */}}
{{- define "inland.configToml" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $kafka := deepCopy (default dict (get $cfg "kafka")) }}
{{- $props := merge (include "inland.kafkaProperties" . | fromYaml) (default dict (get $kafka "properties")) }}
{{- $_ := set $kafka "properties" $props }}
{{- $_ := set $cfg "kafka" $kafka }}
{{- include "inland.tomlTable" (dict "path" list "table" $cfg) | trim }}
{{- end }}

{{/*
A TOML table: its plain keys, then its sub-tables as [dotted.headers]. Helm reads every
YAML number as a float; whole numbers are written as TOML integers (the binary's integer
settings refuse 12.0), and null values are left out. (dict "path" LIST "table" MAP)
*/}}
{{- define "inland.tomlTable" -}}
{{- $path := .path }}
{{- $table := .table }}
{{- range $k, $v := $table }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) }}
{{ include "inland.tomlKey" $k }} = {{ include "inland.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $table }}
{{- if kindIs "map" $v }}
{{- $sub := append $path $k }}
{{- $keys := list }}
{{- range $sub }}{{ $keys = append $keys (include "inland.tomlKey" .) }}{{ end }}

[{{ join "." $keys }}]
{{- include "inland.tomlTable" (dict "path" $sub "table" $v) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "inland.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "inland.tomlValue" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if kindIs "float64" $v }}{{ if eq (floor $v) $v }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if kindIs "slice" $v }}[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "inland.tomlValue" $e }}{{ end }}]
{{- else if kindIs "map" $v }}{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "inland.tomlKey" $k }} = {{ include "inland.tomlValue" (get $v $k) }}{{ end }} }
{{- else }}{{ $v }}
{{- end }}
{{- end }}

{{/*
Checks the schema cannot express (or expresses less clearly). Rendered from the
ConfigMap template, so `helm template`, `install` and `upgrade` stop with these messages.
*/}}
{{- define "inland.validate" -}}
{{- $region := .Values.store.region | toString }}
{{- if not (regexMatch "^cn-[a-z0-9-]+$" $region) }}
{{- fail (printf "store.region %q is not an in-country region: use cn-north-1, cn-northwest-1 or a self-hosted region named cn-…" $region) }}
{{- end }}
{{- if and .Values.store.endpoint (not (hasPrefix "https://" .Values.store.endpoint)) }}
{{- fail (printf "store.endpoint %q: the object store is reached over https:// only" .Values.store.endpoint) }}
{{- end }}
{{- if include "inland.usesStore" . }}
{{- $s := .Values.store }}
{{- if and $s.ca.existingSecret $s.ca.existingConfigMap }}
{{- fail "store.ca: give existingSecret or existingConfigMap (the store's CA), not both" }}
{{- end }}
{{- if not (has $region $s.allowedRegions) }}
{{- fail (printf "store.region %q is not in store.allowedRegions %v: the binary refuses a region off its region lock; add it there (in-country regions only) or use one of them" $region $s.allowedRegions) }}
{{- end }}
{{- if gt (trimSuffix "d" $s.shelfLife.frameIndex | atoi) (trimSuffix "d" $s.shelfLife.frames | atoi) }}
{{- fail (printf "store.shelfLife.frameIndex (%s) is longer than store.shelfLife.frames (%s): the index would outlive the frames it describes" $s.shelfLife.frameIndex $s.shelfLife.frames) }}
{{- end }}
{{- end }}
{{- if .Values.query.enabled }}
{{- $q := .Values.query }}
{{- $ports := list (int $q.flightPort) (int $q.httpPort) (int .Values.admin.port) }}
{{- if ne (len (uniq $ports)) 3 }}
{{- fail (printf "query.flightPort (%d), query.httpPort (%d) and admin.port (%d) must differ" (int $q.flightPort) (int $q.httpPort) (int .Values.admin.port)) }}
{{- end }}
{{- if eq (int $q.service.flightPort) (int $q.service.httpPort) }}
{{- fail (printf "query.service.flightPort and query.service.httpPort are both %d: give each its own port" (int $q.service.flightPort)) }}
{{- end }}
{{- end }}
{{- $k := .Values.kafka }}
{{- if and (hasPrefix "SASL_" $k.securityProtocol) (or (not $k.sasl.existingSecret) (not $k.sasl.username)) }}
{{- fail (printf "kafka.securityProtocol %s needs kafka.sasl.username and kafka.sasl.existingSecret (a Secret with the password under kafka.sasl.passwordKey)" $k.securityProtocol) }}
{{- end }}
{{- if .Values.geofence.enabled }}
{{- $z := .Values.geofence.zones }}
{{- if not (or $z.geojson $z.existingConfigMap $z.existingSecret) }}
{{- fail "geofence.zones: give the zone file: existingConfigMap, existingSecret, or geojson (--set-file geofence.zones.geojson=zones.geojson); without zones the geofence would pass everything" }}
{{- end }}
{{- if $z.geojson }}
{{- $doc := fromJson $z.geojson }}
{{- if or (hasKey $doc "Error") (ne (toString (get $doc "type")) "FeatureCollection") }}
{{- fail "geofence.zones.geojson is not a GeoJSON FeatureCollection (check it with `inland zones check FILE`)" }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.anonymizer.enabled (eq .Values.anonymizer.frames "anonymize") (not (or .Values.anonymizer.models.volume .Values.anonymizer.models.existingClaim)) }}
{{- fail "anonymizer.models: with anonymizer.frames=anonymize the anonymizer needs the ONNX models (scripts/fetch-models.sh produces them): give existingClaim or volume, or set anonymizer.frames=drop" }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- range $name, $rule := .Values.networkPolicy.egress }}
{{- range $peer := $rule.to }}
{{- if and $peer.ipBlock (has $peer.ipBlock.cidr (list "0.0.0.0/0" "::/0")) }}
{{- fail (printf "networkPolicy.egress.%s allows %s: egress goes only to the named peers; list their CIDRs" $name $peer.ipBlock.cidr) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Containers given in values (anonymizer.models.initContainers) with the chart's security
context laid over theirs: they cannot run with less than the chart's own containers.
(dict "root" $ "containers" LIST) → a YAML list.
*/}}
{{- define "inland.hardenedContainers" -}}
{{- $out := list }}
{{- range $c := .containers }}
{{- $c := deepCopy $c }}
{{- $sc := mergeOverwrite (deepCopy (default dict $c.securityContext)) (deepCopy $.root.Values.securityContext) }}
{{- $_ := set $c "securityContext" $sc }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
A string for an INLAND__… variable. The binary's loader (figment) reads variable values as
TOML-like literals, so a value that would read as a number, a boolean or a list is written
as a quoted string. (a string) → the variable's value.
*/}}
{{- define "inland.envString" -}}
{{- if regexMatch "^(true|false|-?[0-9.]+|[\\[{\"'].*)$" . }}{{ toJson . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
The `store` section (crates/inland-store/src/config.rs) as INLAND__STORE__… variables and
the credentials from store.existingSecret, for everything that talks to the store (the
archiver, the query service, the bootstrap Job): one definition, so they agree.
(dict "root" $ "sseC" BOOL): with sseC, the SSE-C key file (the Job needs no key).
*/}}
{{- define "inland.storeEnv" -}}
{{- $s := .root.Values.store }}
- name: INLAND__STORE__BACKEND
  value: "s3"
- name: INLAND__STORE__S3__ENDPOINT
  value: {{ $s.endpoint | quote }}
- name: INLAND__STORE__S3__REGION
  value: {{ $s.region | quote }}
- name: INLAND__STORE__S3__ALLOWED_REGIONS
  value: {{ toJson $s.allowedRegions | quote }}
- name: INLAND__STORE__S3__BUCKET
  value: {{ include "inland.envString" $s.bucket | quote }}
- name: INLAND__STORE__S3__PATH_STYLE
  value: {{ $s.pathStyle | toString | quote }}
{{- if or $s.ca.existingSecret $s.ca.existingConfigMap }}
- name: INLAND__STORE__S3__CA_FILE
  value: /etc/inland/store-ca/ca.crt
{{- end }}
{{- if and .sseC $s.sseC.existingSecret }}
- name: INLAND__STORE__S3__SSE_C_KEY_FILE
  value: /etc/inland/store-sse-c/sse-c.key
{{- end }}
{{- range $key, $field := dict "telemetry" "TELEMETRY" "frames" "FRAMES" "frameIndex" "FRAME_INDEX" "consent" "CONSENT" "audit" "AUDIT" }}
- name: INLAND__STORE__SHELF_LIFE__{{ $field }}
  value: {{ index $s.shelfLife $key | quote }}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ $s.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ $s.secretAccessKeyKey }}
{{- end }}

{{/* The store's CA and SSE-C key volumes: (dict "root" $ "sseC" BOOL) → a YAML list. */}}
{{- define "inland.storeVolumes" -}}
{{- $s := .root.Values.store }}
{{- if $s.ca.existingSecret }}
- name: store-ca
  secret:
    secretName: {{ $s.ca.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $s.ca.key }}
        path: ca.crt
{{- else if $s.ca.existingConfigMap }}
- name: store-ca
  configMap:
    name: {{ $s.ca.existingConfigMap }}
    items:
      - key: {{ $s.ca.key }}
        path: ca.crt
{{- end }}
{{- if and .sseC $s.sseC.existingSecret }}
- name: store-sse-c
  secret:
    secretName: {{ $s.sseC.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $s.sseC.key }}
        path: sse-c.key
{{- end }}
{{- end }}

{{- define "inland.storeVolumeMounts" -}}
{{- $s := .root.Values.store }}
{{- if or $s.ca.existingSecret $s.ca.existingConfigMap }}
- name: store-ca
  mountPath: /etc/inland/store-ca
  readOnly: true
{{- end }}
{{- if and .sseC $s.sseC.existingSecret }}
- name: store-sse-c
  mountPath: /etc/inland/store-sse-c
  readOnly: true
{{- end }}
{{- end }}

{{/* Whether any service of this release uses the store ("true" or ""). */}}
{{- define "inland.usesStore" -}}
{{- if or .Values.archiver.enabled .Values.query.enabled }}true{{ end }}
{{- end }}
