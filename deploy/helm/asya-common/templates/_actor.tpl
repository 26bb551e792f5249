{{/*
The two mesh containers of an actor, joined by the socket directory
/var/run/asya (an emptyDir named <actor>-sockets):

  runtime   `asya-mesh runtime`, the handler ASYA_HANDLER; started when its
            socket answers, ready once it serves and every state proxy of
            its mounts answers (it writes runtime-ready only then), so no
            checkpoint is attempted before the proxy serves
  sidecar   `asya-mesh sidecar`, consumes the actor's queue once the
            runtime is ready; started and ready once it consumes (it
            writes sidecar-ready then)

Call with a dict:
  root            $
  name            actor name (queue asya-<namespace>-<name>)
  handler         ASYA_HANDLER
  endActor        true for x-sink / x-sump (ASYA_IS_END_ACTOR)
  transport       per-actor transport type, or ""
  env             map NAME: value for the runtime (empty values skipped)
  runtimeEnv      list of EnvVar for the runtime, rendered before env
  runtimeMounts   list of extra VolumeMounts for the runtime
  sidecar         {env: [EnvVar], resources: {}} (the original's sidecar block)
  resources       runtime resources
  image           overrides of .Values.image {repository, tag, pullPolicy}, or nil
*/}}
{{- define "asya-common.actorContainers" -}}
{{- $root := .root -}}
{{- $sidecar := .sidecar | default dict -}}
{{- $probes := $root.Values.probes -}}
{{- /* Each probe gives up (--timeout 2) before the kubelet would (timeoutSeconds 3). */ -}}
{{- $serving := list "/usr/local/bin/asya-mesh" "healthcheck" "--timeout" "2" "--socket" "/var/run/asya/asya-runtime.sock" -}}
{{- $ready := list "/usr/local/bin/asya-mesh" "healthcheck" "--timeout" "2" "--file" "/var/run/asya/runtime-ready" -}}
- name: runtime
  {{- include "asya-common.meshImage" (dict "root" $root "override" .image) | nindent 2 }}
  args: ["runtime"]
  {{- $runtimeEnv := list (dict "name" "ASYA_HANDLER" "value" .handler) (dict "name" "ASYA_SOCKET_DIR" "value" "/var/run/asya") }}
  {{- $runtimeEnv = concat $runtimeEnv (.runtimeEnv | default list) (fromYamlArray (include "asya-common.envList" (.env | default dict))) }}
  env:
    {{- toYaml $runtimeEnv | nindent 4 }}
  volumeMounts:
    - name: {{ .name }}-sockets
      mountPath: /var/run/asya
    {{- with .runtimeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  startupProbe:
    {{- include "asya-common.execProbe" (dict "command" $serving "settings" $probes.startup) | nindent 4 }}
  readinessProbe:
    {{- include "asya-common.execProbe" (dict "command" $ready "settings" $probes.readiness) | nindent 4 }}
  livenessProbe:
    {{- include "asya-common.execProbe" (dict "command" $serving "settings" $probes.liveness) | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  {{- with .resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- name: sidecar
  {{- include "asya-common.meshImage" (dict "root" $root "override" .image) | nindent 2 }}
  args: ["sidecar"]
  {{- $sidecarEnv := list (dict "name" "ASYA_ACTOR_NAME" "value" .name) (dict "name" "ASYA_SOCKET_DIR" "value" "/var/run/asya") (dict "name" "ASYA_IS_END_ACTOR" "value" (.endActor | default false | toString)) }}
  {{- with $root.Values.gatewayUrl }}
  {{- $sidecarEnv = append $sidecarEnv (dict "name" "ASYA_GATEWAY_URL" "value" .) }}
  {{- end }}
  {{- $sidecarEnv = concat $sidecarEnv (fromYamlArray (include "asya-common.transportEnv" (dict "root" $root "type" .transport))) ($sidecar.env | default list) }}
  env:
    {{- toYaml $sidecarEnv | nindent 4 }}
  {{- with include "asya-common.transportEnvFrom" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  volumeMounts:
    - name: {{ .name }}-sockets
      mountPath: /var/run/asya
  {{- $consuming := list "/usr/local/bin/asya-mesh" "healthcheck" "--timeout" "2" "--file" "/var/run/asya/sidecar-ready" }}
  startupProbe:
    {{- include "asya-common.execProbe" (dict "command" $consuming "settings" $probes.startup) | nindent 4 }}
  readinessProbe:
    {{- include "asya-common.execProbe" (dict "command" $consuming "settings" $probes.readiness) | nindent 4 }}
  livenessProbe:
    {{- include "asya-common.execProbe" (dict "command" $consuming "settings" $probes.liveness) | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  {{- with $sidecar.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
