{{/* Every actor the flows name, plus the crew: the queues to create. */}}
{{- define "asya-gateway.actors" -}}
{{- $actors := list -}}
{{- range .Values.gateway.flows -}}
{{- $actors = concat $actors (list .entrypoint) (.route_next | default list) -}}
{{- end -}}
{{- concat $actors .Values.setup.crew | uniq | join "," -}}
{{- end }}

{{- define "asya-gateway.listenUrl" -}}
{{- $host := .Values.gateway.address -}}
{{- if eq $host "0.0.0.0" }}{{ $host = "127.0.0.1" }}{{ end -}}
http://{{ $host }}:{{ .Values.gateway.port }}/health
{{- end }}

{{/* The pod of the queue setup, as a Job's template or a bare Pod. */}}
{{- define "asya-gateway.setupPodSpec" -}}
{{ include "asya-common.podSettings" . | trim }}
restartPolicy: {{ if eq .Values.setup.kind "Job" }}OnFailure{{ else }}Never{{ end }}
containers:
  - name: setup
    {{- include "asya-common.meshImage" (dict "root" . "override" nil) | nindent 4 }}
    args: ["setup", "--actors", {{ include "asya-gateway.actors" . | quote }}]
    env:
      {{- include "asya-common.transportEnv" (dict "root" . "type" "") | nindent 6 }}
    {{- with include "asya-common.transportEnvFrom" . | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      requests:
        cpu: 10m
        memory: 32Mi
      limits:
        cpu: 200m
        memory: 64Mi
{{- end }}
