{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "moneta.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: release name, plus the chart name unless the release already carries it.
Truncated so that "-<component>" suffixes still fit in 63 characters. */}}
{{- define "moneta.fullname" -}}
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

{{- define "moneta.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; call with (dict "root" $ "component" "api"). */}}
{{- define "moneta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moneta.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Common labels; call with (dict "root" $ "component" "api"). */}}
{{- define "moneta.labels" -}}
helm.sh/chart: {{ include "moneta.chart" .root }}
{{ include "moneta.selectorLabels" . }}
app.kubernetes.io/version: {{ include "moneta.imageTag" .root | trunc 63 | quote }}
app.kubernetes.io/part-of: moneta
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "moneta.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "moneta.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "moneta.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "moneta.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "moneta.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "moneta.secretName" -}}
{{- default (include "moneta.fullname" .) .Values.secrets.name }}
{{- end }}

{{/* The non-secret environment, as a YAML map of strings (ConfigMap data; the migration Job
renders the same map inline because the ConfigMap does not exist yet during pre-install). */}}
{{- define "moneta.configData" -}}
{{- $c := .Values.config -}}
MONETA_LOG_LEVEL: {{ $c.logLevel | quote }}
MONETA_LOG_FORMAT: {{ $c.logFormat | quote }}
MONETA_ENVIRONMENT: {{ $c.environment | quote }}
MONETA_INPROCESS_WORKER: "false"
MONETA_EVENTS_SINK: {{ $c.eventsSink | quote }}
MONETA_KAFKA_BOOTSTRAP_SERVERS: {{ $c.kafkaBootstrapServers | quote }}
MONETA_KAFKA_TOPIC_PREFIX: {{ $c.kafkaTopicPrefix | quote }}
MONETA_KAFKA_TOPIC_PARTITIONS: {{ $c.kafkaTopicPartitions | toString | quote }}
MONETA_KAFKA_REPLICATION_FACTOR: {{ $c.kafkaReplicationFactor | toString | quote }}
MONETA_AWS_REGION: {{ $c.awsRegion | quote }}
MONETA_DB_POOL_MAX_SIZE: {{ $c.dbPoolMaxSize | toString | quote }}
{{- with $c.sqsQueueUrl }}
MONETA_SQS_QUEUE_URL: {{ . | quote }}
{{- end }}
{{- with $c.otelExporterOtlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- range $name, $value := $c.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Environment read from the Secret; call with (dict "root" $ "secretName" name "databaseUrlKey" key). */}}
{{- define "moneta.secretEnv" -}}
{{- $keys := .root.Values.secrets.keys -}}
- name: MONETA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .databaseUrlKey | default $keys.databaseUrl }}
- name: MONETA_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ $keys.redisUrl }}
      optional: true
- name: MONETA_SENTRY_DSN
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ $keys.sentryDsn }}
      optional: true
{{- end }}

{{/* Topology spread for a component: its own constraints, or a soft spread over zones and nodes. */}}
{{- define "moneta.topologySpread" -}}
{{- $c := .values -}}
{{- if $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $c.topologySpreadConstraints | nindent 2 }}
{{- else if .root.Values.defaultTopologySpread }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "moneta.selectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "moneta.selectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end }}

{{/* A Deployment of one long-running process; call with
(dict "root" $ "component" "relay" "values" .Values.relay "args" (list ...) "ports" (list ...) "env" (list ...)). */}}
{{- define "moneta.deployment" -}}
{{- $root := .root -}}
{{- $c := .values -}}
{{- $labels := dict "root" $root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "moneta.fullname" $root }}-{{ .component }}
  labels:
    {{- include "moneta.labels" $labels | nindent 4 }}
spec:
  {{- if not (and $c.autoscaling $c.autoscaling.enabled) }}
  replicas: {{ $c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "moneta.selectorLabels" $labels | nindent 6 }}
  strategy:
    {{- toYaml $c.strategy | nindent 4 }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- if $root.Values.secrets.create }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "moneta.labels" $labels | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "moneta.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "moneta.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          {{- with .ports }}
          ports:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "moneta.fullname" $root }}
          env:
            {{- include "moneta.secretEnv" (dict "root" $root "secretName" (include "moneta.secretName" $root)) | nindent 12 }}
            - name: OTEL_SERVICE_NAME
              value: moneta-{{ .component }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- with $c.startupProbe }}
          startupProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $c.livenessProbe }}
          livenessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $c.readinessProbe }}
          readinessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- if $c.preStopSleepSeconds }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $c.preStopSleepSeconds | toString | quote }}]
          {{- end }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
      {{- with include "moneta.topologySpread" (dict "root" $root "component" .component "values" $c) | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* A PodDisruptionBudget; call with (dict "root" $ "component" "api" "values" .Values.api). */}}
{{- define "moneta.pdb" -}}
{{- if .values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "moneta.fullname" .root }}-{{ .component }}
  labels:
    {{- include "moneta.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "moneta.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end }}
