{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "kws.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, or the release name when it contains the chart name. */}}
{{- define "kws.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kws.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kws.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kws.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kws.labels" -}}
helm.sh/chart: {{ include "kws.chart" . }}
{{ include "kws.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Name of the metrics Service (also the `job` label a ServiceMonitor gives the series). */}}
{{- define "kws.metricsServiceName" -}}
{{- printf "%s-metrics" (include "kws.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kws.sidecarImage" -}}
{{- $tag := default .Chart.AppVersion .Values.sidecar.image.tag }}
{{- printf "%s:%s" .Values.sidecar.image.repository $tag }}
{{- end }}

{{- define "kws.appImage" -}}
{{- if not .Values.app.image.repository }}
{{- fail "app.image.repository is required: the image of the application that receives the records" }}
{{- end }}
{{- if .Values.app.image.tag }}
{{- printf "%s:%s" .Values.app.image.repository .Values.app.image.tag }}
{{- else }}
{{- .Values.app.image.repository }}
{{- end }}
{{- end }}

{{/*
The sidecar config: sidecar.config with the keys the chart manages merged over it, so
that the pod spec and the config cannot disagree (admin port, shutdown timing, static
membership).
*/}}
{{- define "kws.sidecarConfig" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- $drain := int .Values.sidecar.drainTimeoutSeconds }}
{{- if le $drain 0 }}
{{- fail "sidecar.drainTimeoutSeconds must be more than 0" }}
{{- end }}
{{- if ge $drain $grace }}
{{- fail (printf "sidecar.drainTimeoutSeconds (%d) must be less than terminationGracePeriodSeconds (%d), leaving time to commit offsets and leave the group" $drain $grace) }}
{{- end }}
{{- $config := deepCopy (default dict .Values.sidecar.config) }}
{{- $managed := dict
      "admin" (dict "listen" (printf "0.0.0.0:%d" (int .Values.sidecar.adminPort)))
      "shutdown" (dict "drain_timeout" (printf "%ds" $drain) "termination_grace_period" (printf "%ds" $grace)) }}
{{- if and .Values.statefulset.enabled .Values.statefulset.staticMembership }}
{{- $_ := set $managed "kafka" (dict "group_instance_id" "${POD_NAME}") }}
{{- end }}
{{- mergeOverwrite $config $managed | toYaml }}
{{- end }}

{{/* Environment of the sidecar container. */}}
{{- define "kws.sidecarEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- range .Values.sidecar.secretEnv }}
- name: {{ required "sidecar.secretEnv[].env is required" .env }}
  valueFrom:
    secretKeyRef:
      name: {{ required "sidecar.secretEnv[].secretName is required" .secretName }}
      key: {{ required "sidecar.secretEnv[].key is required" .key }}
      {{- if hasKey . "optional" }}
      optional: {{ .optional }}
      {{- end }}
{{- end }}
{{- with .Values.sidecar.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The sidecar container; `native` adds restartPolicy: Always (an init container). */}}
{{- define "kws.sidecarContainer" -}}
- name: {{ .Values.sidecar.name }}
  image: {{ include "kws.sidecarImage" . | quote }}
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["--config", "/etc/kafka-webhook-sidecar/config.yaml"]
  ports:
    - name: admin
      containerPort: {{ .Values.sidecar.adminPort }}
      protocol: TCP
  env:
    {{- include "kws.sidecarEnv" . | nindent 4 }}
  {{- with .Values.sidecar.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - name: sidecar-config
      mountPath: /etc/kafka-webhook-sidecar
      readOnly: true
    {{- with .Values.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The application container. */}}
{{- define "kws.appContainer" -}}
- name: {{ .Values.app.name }}
  image: {{ include "kws.appImage" . | quote }}
  imagePullPolicy: {{ .Values.app.image.pullPolicy }}
  {{- with .Values.app.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.app.port }}
      protocol: TCP
  {{- with .Values.app.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.readinessProbe }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.app.volumeMounts }}
  volumeMounts:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The pod template, shared by the Deployment and the StatefulSet. */}}
{{- define "kws.podTemplate" -}}
metadata:
  labels:
    {{- include "kws.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/sidecar-config: {{ include "kws.sidecarConfig" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.serviceAccount.name }}
  serviceAccountName: {{ . }}
  {{- end }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
  terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if .Values.sidecar.native }}
  initContainers:
    {{- include "kws.sidecarContainer" . | nindent 4 }}
  {{- end }}
  containers:
    {{- include "kws.appContainer" . | nindent 4 }}
    {{- if not .Values.sidecar.native }}
    {{- include "kws.sidecarContainer" . | nindent 4 }}
    {{- end }}
  volumes:
    - name: sidecar-config
      configMap:
        name: {{ include "kws.fullname" . }}-config
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
