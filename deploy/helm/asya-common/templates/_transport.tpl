{{/*
Environment of anything that talks to the message transport (sidecars, the
gateway, queue setup), from .Values.transport:

  type        sqs | rabbitmq | pubsub | nats
  namespace   ASYA_NAMESPACE: queues are asya-<namespace>-<actor>
  existingSecret  a Secret whose keys are environment variables
              (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ASYA_RABBITMQ_URL,
              ASYA_NATS_URL, ...), loaded with envFrom
  sqs.{endpoint, region, waitTimeSeconds, visibilityTimeout, accessKey, secretKey}
  rabbitmq.{url, exchange, prefetch}
  pubsub.{projectId, endpoint, ackDeadline, wait}
  nats.{url, ackWait, wait}

Plain accessKey/secretKey/url values are for emulators; real credentials
belong in existingSecret (or, for SQS, the pod's IAM role).
transportEnv returns a YAML list of EnvVar (see envList).
Call with (dict "root" $ "type" "<override or empty>").
*/}}

{{- define "asya-common.transportType" -}}
{{- $type := .type | default .root.Values.transport.type -}}
{{- if not (has $type (list "sqs" "rabbitmq" "pubsub" "nats")) -}}
{{- fail (printf "transport.type must be sqs, rabbitmq, pubsub or nats (got %q)" $type) -}}
{{- end -}}
{{- $type -}}
{{- end }}

{{/*
A map NAME: value as a YAML list of EnvVar (empty values left out, names in
order); callers turn it back into a list with fromYamlArray.
*/}}
{{- define "asya-common.envList" -}}
{{- $list := list -}}
{{- range $name, $value := . -}}
{{- if ne (toString $value) "" -}}
{{- $list = append $list (dict "name" $name "value" (toString $value)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $list -}}
{{- end }}

{{- define "asya-common.transportEnv" -}}
{{- $t := .root.Values.transport -}}
{{- $type := include "asya-common.transportType" . -}}
{{- $env := dict "ASYA_TRANSPORT" $type "ASYA_NAMESPACE" ($t.namespace | default "default") -}}
{{- if eq $type "sqs" -}}
{{- $s := $t.sqs | default dict -}}
{{- $_ := set $env "ASYA_SQS_ENDPOINT" ($s.endpoint | default "") -}}
{{- $_ := set $env "ASYA_AWS_REGION" ($s.region | default "us-east-1") -}}
{{- $_ := set $env "AWS_REGION" ($s.region | default "us-east-1") -}}
{{- $_ := set $env "ASYA_SQS_WAIT_TIME_SECONDS" ($s.waitTimeSeconds | default "") -}}
{{- $_ := set $env "ASYA_SQS_VISIBILITY_TIMEOUT" ($s.visibilityTimeout | default "") -}}
{{- $_ := set $env "AWS_ACCESS_KEY_ID" ($s.accessKey | default "") -}}
{{- $_ := set $env "AWS_SECRET_ACCESS_KEY" ($s.secretKey | default "") -}}
{{- else if eq $type "rabbitmq" -}}
{{- $r := $t.rabbitmq | default dict -}}
{{- $_ := set $env "ASYA_RABBITMQ_URL" ($r.url | default "") -}}
{{- $_ := set $env "ASYA_RABBITMQ_EXCHANGE" ($r.exchange | default "") -}}
{{- $_ := set $env "ASYA_RABBITMQ_PREFETCH" ($r.prefetch | default "") -}}
{{- else if eq $type "pubsub" -}}
{{- $p := $t.pubsub | default dict -}}
{{- $_ := set $env "ASYA_PUBSUB_PROJECT_ID" (required "transport.pubsub.projectId is required for pubsub" $p.projectId) -}}
{{- $_ := set $env "ASYA_PUBSUB_ENDPOINT" ($p.endpoint | default "") -}}
{{- $_ := set $env "ASYA_PUBSUB_ACK_DEADLINE" ($p.ackDeadline | default "") -}}
{{- $_ := set $env "ASYA_PUBSUB_WAIT" ($p.wait | default "") -}}
{{- else if eq $type "nats" -}}
{{- $n := $t.nats | default dict -}}
{{- $_ := set $env "ASYA_NATS_URL" ($n.url | default "") -}}
{{- $_ := set $env "ASYA_NATS_ACK_WAIT" ($n.ackWait | default "") -}}
{{- $_ := set $env "ASYA_NATS_WAIT" ($n.wait | default "") -}}
{{- end -}}
{{- include "asya-common.envList" $env -}}
{{- end }}

{{- define "asya-common.transportEnvFrom" -}}
{{- with .Values.transport.existingSecret }}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end }}
