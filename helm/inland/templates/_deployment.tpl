{{/*
inland.deployment: everything one Inland service needs, from its values block
(.Values.<name>) and what its own template adds. Every service renders through it:

  {{ include "inland.deployment" (dict
       "root" $               the chart's root context
       "name" "gateway"       the subcommand (`inland gateway`), the values key, the component label
       "ports" (list (dict "name" "grpc" "port" 50051 "servicePort" 50051))
                              ports it serves: a Service (shaped by .Values.<name>.service)
                              and NetworkPolicy ingress from .Values.networkPolicy.ingress.<name>;
                              may be empty
       "kafka" true           talks to Kafka: bootstrap, credentials, broker egress
       "store" false          talks to the object store: the `store` section and credentials
                              (inland.storeEnv), its CA and SSE-C key, store egress
       "env" (include …)      YAML list of its own environment variables
       "volumes" (include …)  YAML list of its own volumes
       "volumeMounts" (include …)
       "initContainers" LIST  containers (the chart's security context is laid over theirs)
  ) }}

A service's own `tmpSizeLimit` (when its values block has one) sizes its /tmp.

It renders the Deployment, a metrics Service (admin port, for the ServiceMonitor), the
served Service, an HPA and a PDB (when enabled) and the NetworkPolicy.
*/}}
{{- define "inland.deployment" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $v := index $root.Values $name }}
{{- $d := $root.Values.defaults }}
{{- $np := $root.Values.networkPolicy }}
{{- $fullname := printf "%s-%s" (include "inland.fullname" $root) $name }}
{{- $sel := dict "root" $root "name" $name }}
{{- $selector := include "inland.selectorLabels" $sel | fromYaml }}
{{- $adminPort := int $root.Values.admin.port }}
{{- $ports := default list .ports }}
{{- $useKafka := .kafka }}
{{- $useStore := .store }}
{{- if $v.enabled }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "inland.componentLabels" $sel | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- toYaml $selector | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- $labels := merge (include "inland.componentLabels" $sel | fromYaml) (deepCopy (default dict $v.podLabels)) (deepCopy (default dict $d.podLabels)) }}
        {{- toYaml $labels | nindent 8 }}
      annotations:
        {{- $annotations := merge (dict "checksum/config" (include "inland.configToml" $root | sha256sum)) (deepCopy (default dict $v.podAnnotations)) (deepCopy (default dict $d.podAnnotations)) }}
        {{- toYaml $annotations | nindent 8 }}
    spec:
      serviceAccountName: {{ include "inland.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.automountServiceAccountToken }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $d.priorityClassName $v.priorityClassName) }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with (default $d.nodeSelector $v.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $d.tolerations $v.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $d.affinity $v.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $d.topologySpreadConstraints $v.topologySpreadConstraints) }}
      topologySpreadConstraints:
        {{- range $c := . }}
        {{- $c := deepCopy $c }}
        {{- if not $c.labelSelector }}
        {{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) }}
        {{- end }}
        {{- toYaml (list $c) | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with .initContainers }}
      initContainers:
        {{- include "inland.hardenedContainers" (dict "root" $root "containers" .) | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "inland.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["/usr/local/bin/inland"]
          args: [{{ $name | quote }}]
          ports:
            {{- range $ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
              protocol: TCP
            {{- end }}
            - name: admin
              containerPort: {{ $adminPort }}
              protocol: TCP
          env:
            - name: INLAND_CONFIG
              value: /etc/inland/inland.toml
            - name: INLAND__OBSERVABILITY__LOG_FORMAT
              value: {{ $root.Values.observability.logFormat | quote }}
            {{- with $root.Values.observability.logFilter }}
            - name: INLAND__OBSERVABILITY__LOG_FILTER
              value: {{ . | quote }}
            {{- end }}
            - name: INLAND__OBSERVABILITY__ADMIN_LISTEN
              value: {{ printf "0.0.0.0:%d" $adminPort | quote }}
            {{- with $root.Values.observability.otel.endpoint }}
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: {{ . | quote }}
            - name: OTEL_SERVICE_NAME
              value: {{ printf "inland-%s" $name | quote }}
            {{- end }}
            {{- if $useKafka }}
            - name: INLAND__KAFKA__BOOTSTRAP_SERVERS
              value: {{ $root.Values.kafka.bootstrapServers | quote }}
            {{- if hasPrefix "SASL_" $root.Values.kafka.securityProtocol }}
            - name: INLAND__KAFKA__PROPERTIES__SASL_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.kafka.sasl.existingSecret }}
                  key: {{ $root.Values.kafka.sasl.passwordKey }}
            {{- end }}
            {{- end }}
            {{- if $useStore }}
            {{- include "inland.storeEnv" (dict "root" $root "sseC" true) | trim | nindent 12 }}
            {{- end }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $d.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          {{- range $kind := list "startup" "liveness" "readiness" }}
          {{- $p := index $root.Values.probes $kind }}
          {{ $kind }}Probe:
            httpGet:
              path: {{ $p.path }}
              port: admin
            periodSeconds: {{ $p.periodSeconds }}
            timeoutSeconds: {{ $p.timeoutSeconds }}
            failureThreshold: {{ $p.failureThreshold }}
          {{- end }}
          volumeMounts:
            - name: config
              mountPath: /etc/inland/inland.toml
              subPath: inland.toml
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if $useKafka }}
            {{- if $root.Values.kafka.tls.caSecret.name }}
            - name: kafka-ca
              mountPath: /etc/inland/kafka-ca
              readOnly: true
            {{- end }}
            {{- if $root.Values.kafka.tls.clientCertSecret.name }}
            - name: kafka-client
              mountPath: /etc/inland/kafka-client
              readOnly: true
            {{- end }}
            {{- end }}
            {{- if $useStore }}
            {{- with include "inland.storeVolumeMounts" (dict "root" $root "sseC" true) | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- end }}
            {{- with .volumeMounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ include "inland.fullname" $root }}-config
        - name: tmp
          emptyDir:
            sizeLimit: {{ default $root.Values.tmpSizeLimit $v.tmpSizeLimit }}
        {{- if $useKafka }}
        {{- with $root.Values.kafka.tls.caSecret }}
        {{- if .name }}
        - name: kafka-ca
          secret:
            secretName: {{ .name }}
            defaultMode: 0440
            items:
              - key: {{ .key }}
                path: ca.crt
        {{- end }}
        {{- end }}
        {{- with $root.Values.kafka.tls.clientCertSecret.name }}
        - name: kafka-client
          secret:
            secretName: {{ . }}
            defaultMode: 0440
            items:
              - key: tls.crt
                path: tls.crt
              - key: tls.key
                path: tls.key
        {{- end }}
        {{- end }}
        {{- if $useStore }}
        {{- with include "inland.storeVolumes" (dict "root" $root "sseC" true) | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- end }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
---
# The admin port (metrics, health) on its own ClusterIP Service: what the ServiceMonitor
# scrapes, never exposed with the served ports.
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-metrics
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "inland.componentLabels" $sel | nindent 4 }}
    inland-metrics: "true"
spec:
  type: ClusterIP
  selector:
    {{- toYaml $selector | nindent 4 }}
  ports:
    - name: admin
      port: {{ $adminPort }}
      targetPort: admin
      protocol: TCP
{{- if $ports }}
{{- $svc := $v.service }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "inland.componentLabels" $sel | nindent 4 }}
  {{- with $svc.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $svc.type }}
  {{- if ne $svc.type "ClusterIP" }}
  {{- with $svc.externalTrafficPolicy }}
  externalTrafficPolicy: {{ . }}
  {{- end }}
  {{- end }}
  {{- if eq $svc.type "LoadBalancer" }}
  {{- with $svc.loadBalancerClass }}
  loadBalancerClass: {{ . }}
  {{- end }}
  {{- with $svc.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  selector:
    {{- toYaml $selector | nindent 4 }}
  ports:
    {{- range $ports }}
    - name: {{ .name }}
      port: {{ .servicePort | default .port }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "inland.componentLabels" $sel | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    {{- if $v.autoscaling.metrics }}
    {{- toYaml $v.autoscaling.metrics | nindent 4 }}
    {{- else }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
    {{- end }}
  {{- with $v.autoscaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "inland.componentLabels" $sel | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- toYaml $selector | nindent 6 }}
  {{- if hasKey $v.pdb "minAvailable" }}
  minAvailable: {{ $v.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  {{- end }}
{{- end }}
{{- if $np.enabled }}
{{- $egress := $np.egress }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $fullname }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "inland.componentLabels" $sel | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- toYaml $selector | nindent 6 }}
  policyTypes: [Ingress, Egress]
  {{- $ingressRules := list }}
  {{- with $np.ingress.monitoring }}
  {{- $ingressRules = append $ingressRules (dict "from" . "ports" (list (dict "port" $adminPort "protocol" "TCP"))) }}
  {{- end }}
  {{- $served := list }}
  {{- range $p := $ports }}{{ $served = append $served (dict "port" $p.port "protocol" "TCP") }}{{ end }}
  {{- with (and $served (index $np.ingress $name)) }}
  {{- $ingressRules = append $ingressRules (dict "from" . "ports" $served) }}
  {{- end }}
  {{- /* `from` must never be empty: an ingress rule without peers admits everyone. */}}
  ingress:
    {{- if $ingressRules }}
    {{- toYaml $ingressRules | nindent 4 }}
    {{- else }} []
    {{- end }}
  {{- $egressRules := list }}
  {{- $wanted := list "dns" "otelCollector" }}
  {{- if $useKafka }}{{ $wanted = append $wanted "kafka" }}{{ end }}
  {{- if $useStore }}{{ $wanted = append $wanted "store" }}{{ end }}
  {{- range $key := $wanted }}
  {{- $rule := index $egress $key }}
  {{- if and $rule $rule.to }}
  {{- $egressRules = append $egressRules (dict "to" $rule.to "ports" $rule.ports) }}
  {{- end }}
  {{- end }}
  {{- /* Likewise `to`: a rule without peers would allow every destination. */}}
  egress:
    {{- if $egressRules }}
    {{- toYaml $egressRules | nindent 4 }}
    {{- else }} []
    {{- end }}
{{- end }}
{{- end }}
{{- end }}
