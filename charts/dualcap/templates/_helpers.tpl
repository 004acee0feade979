{{/* The chart name, truncated to the 63 characters a label allows. */}}
{{- define "dualcap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: release-chart, or the release alone when it contains the chart name. */}}
{{- define "dualcap.fullname" -}}
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

{{/* chart-version, as the helm.sh/chart label. */}}
{{- define "dualcap.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels of every resource. */}}
{{- define "dualcap.labels" -}}
helm.sh/chart: {{ include "dualcap.chart" . }}
{{ include "dualcap.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dualcap
{{- end }}

{{/* The labels the Deployment selects its pods by (never change them on upgrade). */}}
{{- define "dualcap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dualcap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "dualcap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dualcap.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference. */}}
{{- define "dualcap.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The miner agent: its name, its labels, the labels its DaemonSet selects. */}}
{{- define "dualcap.agentName" -}}
{{- printf "%s-agent" (include "dualcap.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dualcap.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dualcap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "dualcap.agentLabels" -}}
helm.sh/chart: {{ include "dualcap.chart" . }}
{{ include "dualcap.agentSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dualcap
{{- end }}

{{- define "dualcap.agentServiceAccountName" -}}
{{- if .Values.agent.serviceAccount.create }}
{{- default (include "dualcap.agentName" .) .Values.agent.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.agent.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with the firmware logins, if any: an existing one, or the chart's. */}}
{{- define "dualcap.agentSecretName" -}}
{{- if .Values.agent.credentials.existingSecret }}
{{- .Values.agent.credentials.existingSecret }}
{{- else if .Values.agent.credentials.logins }}
{{- printf "%s-credentials" (include "dualcap.agentName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
