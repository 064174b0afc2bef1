{{/*
Names, labels and derived settings shared by every template.
*/}}

{{- define "phoenixtwin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "phoenixtwin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "phoenixtwin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "phoenixtwin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "phoenixtwin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "phoenixtwin.labels" -}}
helm.sh/chart: {{ include "phoenixtwin.chart" . }}
{{ include "phoenixtwin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: phoenixtwin
{{- end -}}

{{- define "phoenixtwin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "phoenixtwin.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "phoenixtwin.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator serves, one per line; empty output means all namespaces. */}}
{{- define "phoenixtwin.watchNamespaces" -}}
{{- if and (eq .Values.rbac.scope "cluster") .Values.rbac.watchNamespaces -}}
{{- fail "rbac.watchNamespaces is only used with rbac.scope=namespace (with rbac.scope=cluster the operator serves every namespace): set rbac.scope=namespace or remove rbac.watchNamespaces" -}}
{{- end -}}
{{- if eq .Values.rbac.scope "namespace" -}}
{{- $namespaces := .Values.rbac.watchNamespaces | default (list .Release.Namespace) -}}
{{- range $namespaces }}
{{ . }}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "phoenixtwin.peeringName" -}}
{{- default (include "phoenixtwin.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/*
RBAC rules on the namespaced resources the operator reads and writes: exactly what it needs.
- phoenixtwins: watched (list/watch), patched for its finalizer and kopf's progress annotations
  (every write is a PATCH: no update);
- phoenixtwins/status: the only writer of the status subresource (merge patch);
- phoenixtwins/finalizers: setting ownerReferences with blockOwnerDeletion on the children
  (required where the OwnerReferencesPermissionEnforcement admission plugin is on);
- the child kinds it server-side applies, deletes (reclaim, drift) and watches;
- events: kopf posts one per handler outcome.
*/}}
{{- define "phoenixtwin.namespacedRules" -}}
- apiGroups: [phoenixtwin.io]
  resources: [phoenixtwins]
  verbs: [get, list, watch, patch]
- apiGroups: [phoenixtwin.io]
  resources: [phoenixtwins/status]
  verbs: [get, patch]
- apiGroups: [phoenixtwin.io]
  resources: [phoenixtwins/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps, secrets, serviceaccounts, services]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
