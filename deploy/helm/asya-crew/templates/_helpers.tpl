{{/*
The crew's state proxy: which connector and image an actor gets, and the
container itself. Every helper takes (dict "root" $ "actor" <x-sink or
x-sump values> "bucket" <bucket of that actor>).
*/}}

{{- define "asya-crew.backend" -}}
{{- $backend := .Values.persistence.backend -}}
{{- if not (has $backend (list "s3" "gcs" "redis")) -}}
{{- fail (printf "persistence.backend must be s3, gcs or redis (got %q)" $backend) -}}
{{- end -}}
{{- $backend -}}
{{- end }}

{{/* ASYA_CONNECTOR: the actor's, the chart's, or the backend's default. */}}
{{- define "asya-crew.connector" -}}
{{- $backend := include "asya-crew.backend" .root -}}
{{- $defaults := dict "s3" "s3-buffered-lww" "gcs" "gcs-buffered-lww" "redis" "redis-buffered-cas" -}}
{{- $actor := ((.actor.persistence | default dict).connector | default dict) -}}
{{- $name := $actor.name | default .root.Values.persistence.connector.name | default (get $defaults $backend) | replace "_" "-" -}}
{{- if not (hasPrefix (printf "%s-" $backend) $name) -}}
{{- fail (printf "connector %q of %s does not use persistence.backend %q" $name .actor.name $backend) -}}
{{- end -}}
{{- $name -}}
{{- end }}

{{- define "asya-crew.connectorImage" -}}
{{- $c := .root.Values.persistence.connector -}}
{{- $actor := ((.actor.persistence | default dict).connector | default dict) -}}
{{- $image := $actor.image | default $c.image -}}
{{- if not $image -}}
{{- $image = printf "%s-%s:%s" $c.repository (include "asya-crew.connector" .) ($c.tag | default .root.Chart.AppVersion | toString) -}}
{{- end -}}
{{- $image -}}
{{- end }}

{{/*
Environment of the backend (bucket, endpoint, region, credentials), as a
YAML list of EnvVar.
*/}}
{{- define "asya-crew.secretEnv" -}}
{{- dict "name" .name "valueFrom" (dict "secretKeyRef" (dict "name" .secret "key" .key)) | toYaml -}}
{{- end }}

{{- define "asya-crew.backendEnv" -}}
{{- $p := .root.Values.persistence -}}
{{- $cfg := $p.config -}}
{{- $secret := $p.credentials.existingSecret -}}
{{- $backend := include "asya-crew.backend" .root -}}
{{- $env := list -}}
{{- $plain := dict -}}
{{- if eq $backend "redis" -}}
{{- $_ := set $plain "STATE_PREFIX" .bucket -}}
{{- if $secret -}}
{{- $env = append $env (include "asya-crew.secretEnv" (dict "name" "REDIS_URL" "secret" $secret "key" $p.credentials.redisUrlKey) | fromYaml) -}}
{{- else -}}
{{- $_ := set $plain "REDIS_URL" (required "persistence.config.endpoint (the redis:// URL) or persistence.credentials.existingSecret is required for redis" $cfg.endpoint) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $plain "STATE_BUCKET" .bucket -}}
{{- end -}}
{{- if eq $backend "s3" -}}
{{- $_ := set $plain "AWS_ENDPOINT_URL" $cfg.endpoint -}}
{{- $_ := set $plain "AWS_REGION" $cfg.region -}}
{{- if $secret -}}
{{- $env = append $env (include "asya-crew.secretEnv" (dict "name" "AWS_ACCESS_KEY_ID" "secret" $secret "key" $p.credentials.accessKeyIdKey) | fromYaml) -}}
{{- $env = append $env (include "asya-crew.secretEnv" (dict "name" "AWS_SECRET_ACCESS_KEY" "secret" $secret "key" $p.credentials.secretAccessKeyKey) | fromYaml) -}}
{{- else -}}
{{- $_ := set $plain "AWS_ACCESS_KEY_ID" $cfg.accessKey -}}
{{- $_ := set $plain "AWS_SECRET_ACCESS_KEY" $cfg.secretKey -}}
{{- end -}}
{{- end -}}
{{- if eq $backend "gcs" -}}
{{- $_ := set $plain "GCS_PROJECT" $cfg.project -}}
{{- $_ := set $plain "STORAGE_EMULATOR_HOST" $cfg.emulatorHost -}}
{{- if $secret -}}
{{- $_ := set $plain "GOOGLE_APPLICATION_CREDENTIALS" (printf "/var/run/secrets/asya/gcs/%s" $p.credentials.serviceAccountKey) -}}
{{- end -}}
{{- end -}}
{{- with $cfg.query -}}
{{- $_ := set $plain "QUERY_MAX_FETCH_BYTES" .maxFetchBytes -}}
{{- $_ := set $plain "QUERY_MAX_FETCH_KEYS" .maxFetchKeys -}}
{{- $_ := set $plain "QUERY_MAX_KEYS" .maxKeys -}}
{{- $_ := set $plain "QUERY_MAX_RESULT_ROWS" .maxResultRows -}}
{{- end -}}
{{- concat (fromYamlArray (include "asya-common.envList" $plain)) $env | toYaml -}}
{{- end }}

{{/*
The state proxy container. As a native sidecar its startup probe holds the
runtime back until the socket answers; as a plain container the runtime's
readiness does the same (runtime-ready waits for the proxy).
*/}}
{{- define "asya-crew.stateProxyContainer" -}}
{{- $root := .root -}}
{{- $c := $root.Values.persistence.connector -}}
{{- $probes := $root.Values.probes -}}
{{- $socket := "/var/run/asya/state/checkpoints.sock" -}}
{{- $serving := list "/usr/local/bin/state-proxy" "healthcheck" "--socket" $socket -}}
{{- $backendAnswers := list "/usr/local/bin/state-proxy" "healthcheck" "--ready" "--timeout" "6" "--socket" $socket -}}
- name: state-proxy
  image: {{ include "asya-crew.connectorImage" . }}
  imagePullPolicy: {{ $c.pullPolicy | default "IfNotPresent" }}
  {{- if $c.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  args: ["serve"]
  {{- $env := list (dict "name" "ASYA_CONNECTOR" "value" (include "asya-crew.connector" .)) (dict "name" "CONNECTOR_SOCKET" "value" $socket) }}
  {{- $env = concat $env (fromYamlArray (include "asya-crew.backendEnv" .)) (fromYamlArray (include "asya-common.envList" ($c.env | default dict))) }}
  env:
    {{- toYaml $env | nindent 4 }}
  volumeMounts:
    - name: {{ .actor.name }}-state-sockets
      mountPath: /var/run/asya/state
    {{- if and (eq $root.Values.persistence.backend "gcs") $root.Values.persistence.credentials.existingSecret }}
    - name: {{ .actor.name }}-gcs-credentials
      mountPath: /var/run/secrets/asya/gcs
      readOnly: true
    {{- end }}
  startupProbe:
    {{- include "asya-common.execProbe" (dict "command" $serving "settings" $probes.startup) | nindent 4 }}
  readinessProbe:
    {{- include "asya-common.execProbe" (dict "command" $backendAnswers "settings" (mergeOverwrite (deepCopy $probes.readiness) (dict "timeoutSeconds" 7))) | nindent 4 }}
  livenessProbe:
    {{- include "asya-common.execProbe" (dict "command" $serving "settings" $probes.liveness) | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  {{- with $c.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
