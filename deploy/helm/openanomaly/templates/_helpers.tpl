{{/* Name of the chart, overridable. */}}
{{- define "openanomaly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release and chart, unless the release already says it. */}}
{{- define "openanomaly.fullname" -}}
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

{{- define "openanomaly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "openanomaly.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "openanomaly.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "openanomaly.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "openanomaly.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "openanomaly.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The config file: the values' config with rule_files set to the pipelines' ConfigMap. */}}
{{- define "openanomaly.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "rule_files" (list "pipelines/*.yml") }}
{{- toYaml $cfg }}
{{- end }}
