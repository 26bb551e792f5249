{{/*
Pod-level settings shared by every Asya pod: host network (the local E2E
run), service account, scheduling, pull secrets, the pod security context.
Values: hostNetwork, serviceAccount.name, imagePullSecrets, nodeSelector,
tolerations, affinity, podSecurityContext, terminationGracePeriodSeconds.
*/}}
{{- define "asya-common.podSettings" -}}
{{- if .Values.hostNetwork }}
hostNetwork: true
# Cluster DNS still answers for pods on the host network.
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with (.Values.serviceAccount | default dict).name }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds | default 30 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
An exec probe: (dict "command" (list ...) "settings" .Values.probes.readiness).
Images built from scratch have no shell, so the command is the binary itself.
*/}}
{{- define "asya-common.execProbe" -}}
exec:
  command:
    {{- toYaml .command | nindent 4 }}
{{- with .settings }}
{{ toYaml . }}
{{- end }}
{{- end }}
