{{/*
name is the app name: the chart's name, part of every selector.
*/}}
{{- define "dv-pipecat.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
fullname names the resources. The live releases are dv-pipecat and
dv-pipecat-canary: both contain the chart name, so their resources are named
after the release.
*/}}
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

{{/*
isCanary is "true" for the canary track. The canary owns nothing but its
Deployment.
*/}}
{{- define "dv-pipecat.isCanary" -}}
{{- if eq .Values.releaseTrack "canary" }}true{{ end }}
{{- end }}

{{/*
selectorLabels select the pods of one release. They are immutable on the live
Deployments: never change them.
*/}}
{{- define "dv-pipecat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dv-pipecat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
serviceSelectorLabels select the pods of every release of the app, stable and
canary, so the canary gets its share of the stable Service's traffic.
*/}}
{{- define "dv-pipecat.serviceSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dv-pipecat.name" . }}
{{- end }}

{{/*
labels go on the metadata of every resource.
*/}}
{{- define "dv-pipecat.labels" -}}
{{- $labels := dict
  "helm.sh/chart" (include "dv-pipecat.chart" .)
  "app.kubernetes.io/version" (.Chart.AppVersion | toString)
  "app.kubernetes.io/managed-by" .Release.Service
  "version" .Values.releaseTrack
}}
{{- $labels = merge (include "dv-pipecat.selectorLabels" . | fromYaml) $labels (deepCopy .Values.commonLabels) }}
{{- toYaml $labels }}
{{- end }}

{{/*
podLabels go on the pod template: the selector labels, the track as `version`,
and .Values.podLabels, which may not replace any of those.
*/}}
{{- define "dv-pipecat.podLabels" -}}
{{- $fixed := merge (include "dv-pipecat.selectorLabels" . | fromYaml) (dict "version" .Values.releaseTrack) }}
{{- range $k, $v := .Values.podLabels }}
{{- if hasKey $fixed $k }}
{{- if eq $k "version" }}
{{- fail "podLabels.version: the chart sets the pod's version label from releaseTrack; remove it from podLabels and set releaseTrack" }}
{{- end }}
{{- fail (printf "podLabels.%s: this is a selector label the chart sets itself and the live Deployment's selector cannot change; remove it from podLabels" $k) }}
{{- end }}
{{- end }}
{{- toYaml (merge $fixed (deepCopy .Values.podLabels)) }}
{{- end }}

{{/*
image is repository@digest when a digest is given, else repository:tag with
the tag defaulting to the chart's appVersion.
*/}}
{{- define "dv-pipecat.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
checkDrain refuses a drain deadline the grace period cannot hold: the kubelet
kills the container when terminationGracePeriodSeconds run out, preStop
included, so the drain and the app's exit after SIGTERM must both fit.
*/}}
{{- define "dv-pipecat.checkDrain" -}}
{{- if .Values.drain.enabled }}
{{- $deadline := int .Values.drain.deadlineSeconds }}
{{- $shutdown := int .Values.drain.shutdownSeconds }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if gt (add $deadline $shutdown) $grace }}
{{- fail (printf "drain.deadlineSeconds (%d) + drain.shutdownSeconds (%d) = %d exceeds terminationGracePeriodSeconds (%d): lower drain.deadlineSeconds or raise terminationGracePeriodSeconds to at least %d" $deadline $shutdown (add $deadline $shutdown) $grace (add $deadline $shutdown)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
drainScript is the preStop program (python, which the image has). It starts
the app's drain, then polls the same endpoint until the JSON field
active_calls is 0 or the deadline passes. A refused or reset connection means
the app is gone: stop. An answer without active_calls (or not JSON) tells
nothing: keep waiting until the deadline. It always exits 0: a failed preStop
only delays SIGTERM until the grace period ends anyway.
*/}}
{{- define "dv-pipecat.drainScript" -}}
import json, sys, time, urllib.error, urllib.request
url = "http://127.0.0.1:{{ int .Values.containerPort }}{{ .Values.drain.path }}"
deadline = time.monotonic() + {{ int .Values.drain.deadlineSeconds }}
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        print("drain: deadline passed with calls still active", flush=True)
        break
    try:
        with urllib.request.urlopen(url, timeout=max(1, min(5, left))) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionError):
            print("drain: app is gone", flush=True)
            break
        body = b""
    except ConnectionError:
        print("drain: app is gone", flush=True)
        break
    except OSError:
        body = b""
    try:
        calls = json.loads(body).get("active_calls")
    except (ValueError, AttributeError):
        calls = None
    if isinstance(calls, (int, float)) and not isinstance(calls, bool) and calls <= 0:
        print("drain: no active calls", flush=True)
        break
    time.sleep(min({{ int .Values.drain.pollSeconds }}, max(0, deadline - time.monotonic())))
sys.exit(0)
{{- end }}
