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
progressDeadlineSeconds is the longest one wave of a rollout can take: old
pods drain for up to terminationGracePeriodSeconds before their room on a full
node pool is free, new pods start (30 s: scheduling, image pull, container
start), then pass the readiness probe, one failed probe allowed
(initialDelaySeconds + periodSeconds). Kubernetes declares the rollout failed
(Progressing=False, ProgressDeadlineExceeded) after that long without
progress. It mirrors pipeline.Rollout.Wave, which the release engine's own
stall budget uses; runner/release's TestRolloutOfRenderedChart keeps them equal.
*/}}
{{- define "dv-pipecat.progressDeadlineSeconds" -}}
{{- $delay := 0 }}
{{- $period := 0 }}
{{- with .Values.readinessProbe }}
{{- $delay = int (.initialDelaySeconds | default 0) }}
{{- $period = int (.periodSeconds | default 10) }}
{{- end }}
{{- add (int .Values.terminationGracePeriodSeconds) 30 $delay $period }}
{{- end }}

{{/*
drainScript is the preStop program (python, which the image has): the chart's
half of the drain contract in docs/app-contract.md. It asks the app to start
draining (GET drain.path, once it answers), then polls drain.statusPath every
drain.pollSeconds until the app reports "active_calls": 0 in a JSON body (any
status code), the app stops answering connections (it is gone), or
drain.deadlineSeconds have passed. An app without a drain endpoint (404) or
that does not report active_calls is simply given the whole deadline: the
pod is already out of the Service's endpoints, so no new call reaches it.
Any other failure of one request (a timeout, http.client's BadStatusLine or
IncompleteRead, which are not OSErrors) is a failed poll: the program asks
again, because if it died the kubelet would send SIGTERM at once and cut the
live calls. It always exits 0.
*/}}
{{- define "dv-pipecat.drainScript" -}}
import json, sys, time, urllib.error, urllib.request
base = "http://127.0.0.1:{{ int .Values.containerPort }}"
start, status = "{{ .Values.drain.path }}", "{{ .Values.drain.statusPath }}"
limit, poll = {{ int .Values.drain.deadlineSeconds }}, {{ int .Values.drain.pollSeconds }}
deadline = time.monotonic() + limit
gone = object()
def log(msg):
    print("drain: " + msg, flush=True)
def get(path):
    timeout = max(1, min(5, deadline - time.monotonic()))
    try:
        try:
            with urllib.request.urlopen(base + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read()
    except urllib.error.URLError as e:
        return gone if isinstance(e.reason, ConnectionError) else None
    except ConnectionError:
        return gone
    except Exception:
        return None
def active_calls(body):
    try:
        n = json.loads(body).get("active_calls")
    except (ValueError, AttributeError):
        return None
    return n if isinstance(n, (int, float)) and not isinstance(n, bool) else None
started = False
while True:
    r = get(status if started else start)
    if r is gone:
        log("the app is gone")
        break
    if r is not None:
        code, body = r
        if not started:
            started = True
            if code == 404:
                log("no drain endpoint (%s: 404): waiting for the app to report no active calls, at most %d s" % (start, limit))
            else:
                log("started (%s: %d)" % (start, code))
        n = active_calls(body)
        if n is not None and n <= 0:
            log("no active calls")
            break
    left = deadline - time.monotonic()
    if left <= 0:
        log("deadline of %d s passed; calls may still be active" % limit)
        break
    time.sleep(min(poll, left))
sys.exit(0)
{{- end }}
