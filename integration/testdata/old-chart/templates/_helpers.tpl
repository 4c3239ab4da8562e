{{- define "dv-pipecat.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dv-pipecat.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "dv-pipecat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dv-pipecat.labels" -}}
helm.sh/chart: {{ include "dv-pipecat.chart" . }}
{{ include "dv-pipecat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "dv-pipecat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dv-pipecat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dv-pipecat.serviceSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dv-pipecat.name" . }}
{{- end }}
