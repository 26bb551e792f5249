{{/*
Labels. Every object gets the recommended app.kubernetes.io labels plus
asya.sh/actor where it belongs to one actor; selectors use the stable subset.
Call with (dict "root" $ "component" "crew" "actor" "x-sink"); actor may be "".
*/}}

{{- define "asya-common.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asya-common.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .actor }}
asya.sh/actor: {{ . }}
{{- end }}
{{- end }}

{{- define "asya-common.labels" -}}
{{ include "asya-common.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: asya
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
helm.sh/chart: {{ include "asya-common.chart" .root }}
{{- end }}
