{{/*
The labels Helm's conventions add to every object, besides the app.kubernetes.io/name label each
object carries as in deploy/. Never in a selector: they change with every chart release.
*/}}
{{- define "skillport.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/*
The Deployment's selector and pod labels: exactly deploy/operator.yaml's (a selector is immutable).
*/}}
{{- define "skillport.selectorLabels" -}}
app.kubernetes.io/name: skillport-operator
{{- end }}

{{/*
The operator's ServiceAccount as an RBAC subject.
*/}}
{{- define "skillport.subject" -}}
- kind: ServiceAccount
  name: skillport-operator
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
Fails rendering on combinations of values the chart cannot honour (values.schema.json checks
each value alone); included by the Deployment.
*/}}
{{- define "skillport.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElect) }}
{{- fail "replicas above 1 need leaderElect=true (otherwise every replica reconciles)" }}
{{- end }}
{{- with .Values.webhook }}
{{- if .enabled }}
{{- if and (not .certManager) (not .caBundle) }}
{{- fail "webhook.caBundle is required with webhook.certManager=false: the base64 PEM (one line, `base64 -w0 ca.crt`) of the CA that signed the Secret skillport-webhook-tls, which you create yourself; or set webhook.certManager=true (cert-manager issues the Secret and injects its CA)" }}
{{- end }}
{{- if and .certManager .caBundle }}
{{- fail "webhook.caBundle is only used with webhook.certManager=false (with cert-manager, its CA injector sets the caBundle)" }}
{{- end }}
{{- if eq (int .port) (int $.Values.metricsPort) }}
{{- fail "webhook.port and metricsPort must differ (each is its own listener in the operator)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
With webhook.certManager, both webhook configurations' annotation: cert-manager's CA injector
copies the CA of the Certificate skillport-webhook (skillport-webhook-ca, the same across
renewals) into their caBundle.
*/}}
{{- define "skillport.webhookCAInjection" -}}
cert-manager.io/inject-ca-from: {{ printf "%s/skillport-webhook" .Release.Namespace }}
{{- end }}

{{/*
A webhook's clientConfig: the Service skillport-webhook at the given path; without certManager,
the caBundle from values. Called with (dict "root" $ "path" "/...").
*/}}
{{- define "skillport.webhookClientConfig" -}}
clientConfig:
  service:
    name: skillport-webhook
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if not .root.Values.webhook.certManager }}
  caBundle: {{ .root.Values.webhook.caBundle | quote }}
  {{- end }}
{{- end }}

{{/*
A webhook's namespaceSelector: never the operator's own namespace, so the operator can always
start (and be fixed) whatever the webhook does.
*/}}
{{- define "skillport.webhookNamespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [{{ .Release.Namespace | quote }}]
{{- end }}
