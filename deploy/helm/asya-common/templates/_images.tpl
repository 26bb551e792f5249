{{/*
"repository:tag" of an image block {repository, tag}; the tag defaults to
the chart's appVersion. Call with (dict "root" $ "image" .Values.image).
*/}}
{{- define "asya-common.image" -}}
{{- printf "%s:%s" (required "image.repository is required" .image.repository) (.image.tag | default .root.Chart.AppVersion | toString) }}
{{- end }}

{{/*
The mesh image (gateway, sidecar, runtime, setup): .Values.image, each field
overridable by an actor's own image block (the original's x-sink.image).
Call with (dict "root" $ "override" <image block or nil>).
*/}}
{{- define "asya-common.meshImage" -}}
{{- $own := .override | default dict -}}
{{- $chart := .root.Values.image -}}
{{- $image := dict "repository" ($own.repository | default $chart.repository) "tag" ($own.tag | default $chart.tag) "pullPolicy" ($own.pullPolicy | default $chart.pullPolicy) -}}
image: {{ include "asya-common.image" (dict "root" .root "image" $image) }}
imagePullPolicy: {{ $image.pullPolicy | default "IfNotPresent" }}
{{- end }}
