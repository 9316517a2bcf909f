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
{{- if and (eq .Values.secretAccess "cluster") .Values.secretNamespaces }}
{{- fail "secretNamespaces is only used with secretAccess=namespaced (with cluster the operator may already read Secrets everywhere)" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElect) }}
{{- fail "replicas above 1 need leaderElect=true (otherwise every replica reconciles)" }}
{{- end }}
{{- end }}
