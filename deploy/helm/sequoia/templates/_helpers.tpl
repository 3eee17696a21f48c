{{- define "sequoia.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sequoia.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "sequoia.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "sequoia.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sequoia.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sequoia.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sequoia.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sequoia.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sequoia
{{- end -}}

{{- define "sequoia.policiesConfigMap" -}}
{{- .Values.policies.existingConfigMap | default (printf "%s-policies" (include "sequoia.fullname" .)) -}}
{{- end -}}

{{- /* The variables the chart sets itself: config must not set them. */ -}}
{{- define "sequoia.checkConfig" -}}
{{- if not (has .Values.mode (list "gateway" "sidecar")) -}}
{{- fail (printf "mode must be gateway or sidecar, not %q" .Values.mode) -}}
{{- end -}}
{{- range $k, $v := .Values.config -}}
{{- if not (hasPrefix "SEQUOIA_" $k) -}}
{{- fail (printf "config.%s: config holds SEQUOIA_* variables only" $k) -}}
{{- end -}}
{{- if has $k (list "SEQUOIA_LISTEN" "SEQUOIA_ADMIN_LISTEN" "SEQUOIA_DRAIN_DELAY" "SEQUOIA_SHUTDOWN_TIMEOUT" "SEQUOIA_POLICY_DIR" "SEQUOIA_STATE_DIR") -}}
{{- fail (printf "config.%s: set by the chart (see ports, shutdown, policies and state)" $k) -}}
{{- end -}}
{{- if eq $k "SEQUOIA_API_TOKEN_FILE" -}}
{{- fail "config.SEQUOIA_API_TOKEN_FILE: set by the chart; put the tokens in a Secret and set apiTokens.existingSecret (and apiTokens.key)" -}}
{{- end -}}
{{- if and (has $k (list "SEQUOIA_NATS_URL" "SEQUOIA_NATS_REPLICAS")) $.Values.nats.enabled -}}
{{- fail (printf "config.%s: set by the chart to its NATS (nats.enabled); set nats.enabled false to use another" $k) -}}
{{- end -}}
{{- end -}}
{{- $cluster := or .Values.nats.enabled .Values.config.SEQUOIA_NATS_URL -}}
{{- $replicas := ternary .Values.app.replicaCount .Values.replicaCount (eq .Values.mode "sidecar") -}}
{{- if and (not $cluster) (or (gt (int $replicas) 1) (and (eq .Values.mode "gateway") .Values.autoscaling.enabled)) -}}
{{- fail "more than one replica (or autoscaling) without cluster mode: each would use the whole SEQUOIA_MAX_CONCURRENCY; enable nats or set config.SEQUOIA_NATS_URL" -}}
{{- end -}}
{{- with .Values.apiTokens -}}
{{- if .existingSecret -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" (toString .key)) -}}
{{- fail (printf "apiTokens.key %q: a Secret key (letters, digits, '-', '_', '.')" (toString .key)) -}}
{{- end -}}
{{- if or (eq (toString .key) ".") (eq (toString .key) "..") (hasPrefix ".." (toString .key)) -}}
{{- fail (printf "apiTokens.key %q: a file name of its own (no '..' prefix)" (toString .key)) -}}
{{- end -}}
{{- if not (isAbs (toString .mountPath)) -}}
{{- fail (printf "apiTokens.mountPath %q: an absolute path" (toString .mountPath)) -}}
{{- end -}}
{{- $dir := clean .mountPath -}}
{{- range $other := list $.Values.policies.mountPath $.Values.state.mountPath -}}
{{- $o := clean $other -}}
{{- if or (eq $dir $o) (hasPrefix (printf "%s/" $dir) $o) (hasPrefix (printf "%s/" $o) $dir) -}}
{{- fail (printf "apiTokens.mountPath %s: overlaps %s (policies or state): the Secret needs a directory of its own" $dir $o) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.nats.enabled (or (lt (int .Values.nats.replicas) 3) (eq (mod (int .Values.nats.replicas) 2) 0)) -}}
{{- fail "nats.replicas: JetStream needs an odd number of nodes, 3 or more" -}}
{{- end -}}
{{- end -}}

{{- define "sequoia.natsName" -}}
{{- printf "%s-nats" (include "sequoia.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sequoia.natsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sequoia.natsName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The sequoia container; in sidecar mode, a native sidecar. */ -}}
{{- define "sequoia.container" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
- name: sequoia
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if $sidecar }}
  # A native sidecar: ready before the application starts, stopped after it exits.
  restartPolicy: Always
  {{- end }}
  args: ["serve"]
  ports:
    {{- if not $sidecar }}
    - name: http
      containerPort: {{ .Values.ports.http }}
      protocol: TCP
    {{- end }}
    - name: admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  env:
    - name: SEQUOIA_LISTEN
      {{- if $sidecar }}
      # Only the application reaches the data port.
      value: "127.0.0.1:{{ .Values.ports.http }}"
      {{- else }}
      value: ":{{ .Values.ports.http }}"
      {{- end }}
    - name: SEQUOIA_ADMIN_LISTEN
      value: ":{{ .Values.ports.admin }}"
    - name: SEQUOIA_DRAIN_DELAY
      value: "{{ if $sidecar }}0{{ else }}{{ int .Values.shutdown.drainDelaySeconds }}{{ end }}s"
    - name: SEQUOIA_SHUTDOWN_TIMEOUT
      value: "{{ int .Values.shutdown.timeoutSeconds }}s"
    - name: SEQUOIA_POLICY_DIR
      value: {{ .Values.policies.mountPath | quote }}
    - name: SEQUOIA_STATE_DIR
      value: {{ .Values.state.mountPath | quote }}
    {{- if .Values.nats.enabled }}
    - name: SEQUOIA_NATS_URL
      value: "nats://{{ include "sequoia.natsName" . }}:4222"
    - name: SEQUOIA_NATS_REPLICAS
      value: "{{ min 3 (int .Values.nats.replicas) }}"
    {{- end }}
    {{- with .Values.apiTokens }}{{ if .existingSecret }}
    # DAG writes need a bearer token of this file (the Secret apiTokens.existingSecret).
    - name: SEQUOIA_API_TOKEN_FILE
      value: {{ printf "%s/%s" (clean .mountPath) .key | quote }}
    {{- end }}{{ end }}
    {{- range $k, $v := .Values.config }}
    - name: {{ $k }}
      value: {{ $v | toString | quote }}
    {{- end }}
  startupProbe:
    httpGet:
      path: /readyz
      port: admin
    periodSeconds: 1
    failureThreshold: 30
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    periodSeconds: 2
    failureThreshold: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    periodSeconds: 10
    failureThreshold: 3
  {{- if and (not $sidecar) (gt (int .Values.shutdown.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ int .Values.shutdown.preStopSleepSeconds }}
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: policies
      mountPath: {{ .Values.policies.mountPath }}
      readOnly: true
    - name: state
      mountPath: {{ .Values.state.mountPath }}
    {{- if .Values.apiTokens.existingSecret }}
    # The whole Secret, no subPath: a subPath mount never sees a rotated token.
    - name: api-tokens
      mountPath: {{ clean .Values.apiTokens.mountPath }}
      readOnly: true
    {{- end }}
{{- end -}}

{{- define "sequoia.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown -}}
{{- if eq .Values.mode "sidecar" -}}
{{- add (int .Values.app.shutdownSeconds) (int $s.timeoutSeconds) (int $s.exitMarginSeconds) -}}
{{- else -}}
{{- add (int $s.preStopSleepSeconds) (int $s.drainDelaySeconds) (int $s.timeoutSeconds) (int $s.exitMarginSeconds) -}}
{{- end -}}
{{- end -}}
