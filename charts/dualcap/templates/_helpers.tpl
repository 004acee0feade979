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

{{/* The OpenADR VEN adapter: its name, its labels, the labels its Deployment selects. */}}
{{- define "dualcap.openadrName" -}}
{{- printf "%s-openadr" (include "dualcap.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dualcap.openadrSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dualcap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: openadr
{{- end }}

{{- define "dualcap.openadrLabels" -}}
helm.sh/chart: {{ include "dualcap.chart" . }}
{{ include "dualcap.openadrSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dualcap
{{- end }}

{{- define "dualcap.openadrServiceAccountName" -}}
{{- if .Values.openadr.serviceAccount.create }}
{{- default (include "dualcap.openadrName" .) .Values.openadr.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.openadr.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The VEN's configuration file (`dualcap openadr --config`), from the values; fails on
     values the adapter would refuse at start, so that a bad release is refused by Helm. */}}
{{- define "dualcap.openadrConfig" -}}
{{- $o := .Values.openadr }}
{{- if not $o.vtnURL }}
{{- fail "openadr.vtnURL is required when openadr.enabled is true" }}
{{- end }}
{{- if and (hasPrefix "http://" $o.vtnURL) (not $o.insecure) }}
{{- fail (printf "openadr.vtnURL %s is plain http://: use https://, or set openadr.insecure: true to allow an unencrypted, unauthenticated VTN" $o.vtnURL) }}
{{- end }}
{{- if not (or (hasPrefix "http://" $o.vtnURL) (hasPrefix "https://" $o.vtnURL)) }}
{{- fail (printf "openadr.vtnURL %s must be an http(s) URL" $o.vtnURL) }}
{{- end }}
{{- if not $o.venName }}
{{- fail "openadr.venName is required when openadr.enabled is true" }}
{{- end }}
{{- if not $o.sites }}
{{- fail "openadr.sites needs at least one site when openadr.enabled is true" }}
{{- end }}
{{- if and $o.signing.enabled (not $o.tlsSecret) }}
{{- fail "openadr.signing.enabled needs openadr.tlsSecret (the Secret with the signing certificate and key)" }}
{{- end }}
{{- $dir := "/etc/dualcap/openadr-tls" }}
{{- $config := dict "vtnURL" $o.vtnURL "venName" $o.venName "insecure" $o.insecure "pollIntervalSeconds" $o.pollIntervalSeconds "leadTimeSeconds" $o.leadTimeSeconds "openEndedHours" $o.openEndedHours "requestTimeoutSeconds" $o.requestTimeoutSeconds "simpleLevels" $o.simpleLevels "sites" $o.sites }}
{{- with $o.venID }}
{{- $_ := set $config "venID" . }}
{{- end }}
{{- if hasPrefix "https://" $o.vtnURL }}
{{- $tls := dict "checkHostname" $o.tls.checkHostname }}
{{- if $o.tlsSecret }}
{{- with $o.tls.caKey }}
{{- $_ := set $tls "caFile" (printf "%s/%s" $dir .) }}
{{- end }}
{{- if $o.tls.certKey }}
{{- if not $o.tls.keyKey }}
{{- fail "openadr.tls.certKey is set: openadr.tls.keyKey names the client certificate's key" }}
{{- end }}
{{- $_ := set $tls "certFile" (printf "%s/%s" $dir $o.tls.certKey) }}
{{- $_ := set $tls "keyFile" (printf "%s/%s" $dir $o.tls.keyKey) }}
{{- end }}
{{- end }}
{{- $_ := set $config "tls" $tls }}
{{- end }}
{{- if $o.signing.enabled }}
{{- $signing := dict "certFile" (printf "%s/%s" $dir $o.signing.certKey) "keyFile" (printf "%s/%s" $dir $o.signing.keyKey) }}
{{- with $o.signing.passphraseKey }}
{{- $_ := set $signing "passphraseFile" (printf "%s/%s" $dir .) }}
{{- end }}
{{- with $o.signing.vtnFingerprint }}
{{- $_ := set $signing "vtnFingerprint" . }}
{{- end }}
{{- $_ := set $config "signing" $signing }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The MultiKueue dispatcher (`dualcap fleet`): its name, its labels, its selector. */}}
{{- define "dualcap.fleetName" -}}
{{- printf "%s-fleet" (include "dualcap.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dualcap.fleetSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dualcap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: fleet
{{- end }}

{{- define "dualcap.fleetLabels" -}}
helm.sh/chart: {{ include "dualcap.chart" . }}
{{ include "dualcap.fleetSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dualcap
{{- end }}

{{- define "dualcap.fleetServiceAccountName" -}}
{{- if .Values.fleet.serviceAccount.create }}
{{- default (include "dualcap.fleetName" .) .Values.fleet.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.fleet.serviceAccount.name }}
{{- end }}
{{- end }}
