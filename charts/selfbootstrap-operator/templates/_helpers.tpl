{{/* Names: <release>-selfbootstrap-operator, or the release name when it already contains the chart's. */}}
{{- define "selfbootstrap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "selfbootstrap.fullname" -}}
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

{{- define "selfbootstrap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "selfbootstrap.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "selfbootstrap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "selfbootstrap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "selfbootstrap.labels" -}}
{{ include "selfbootstrap.selectorLabels" . }}
app.kubernetes.io/version: {{ include "selfbootstrap.tag" . | quote }}
app.kubernetes.io/part-of: selfbootstrap
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "selfbootstrap.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "selfbootstrap.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "selfbootstrap.tag" .) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator serves; empty in cluster mode. Fails on a namespaced install without any. */}}
{{- define "selfbootstrap.watchNamespaces" -}}
{{- if eq .Values.installMode "namespaced" -}}
{{- if not .Values.watchNamespaces -}}
{{- fail "installMode namespaced needs at least one namespace in watchNamespaces" -}}
{{- end -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/*
What the operator may do, in a ClusterRole (cluster mode) or a Role per watched namespace.
The same rules as manifests/cluster-rbac.yaml and manifests/namespaced/team-a.yaml (a test compares them).
*/}}
{{- define "selfbootstrap.operatorRules" -}}
# create: the successor of a retried run (selfbootstrap.dev/retry; admission checks who asked).
- apiGroups: [selfbootstrap.dev]
  resources: [selfbootstrapruns]
  verbs: [get, list, watch, patch, create]
- apiGroups: [selfbootstrap.dev]
  resources: [selfbootstrapruns/status]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, patch]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# StatefulSets and DaemonSets a run targets (spec.target.kind): read by name and patched (deploy, undo);
# their ControllerRevisions hold their releases (listed, never written).
- apiGroups: [apps]
  resources: [statefulsets, daemonsets]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [list]
# A StatefulSet's forced rollback deletes the stuck pods of the bad release (rollbackPolicy.deleteStuckPods).
- apiGroups: [""]
  resources: [pods]
  verbs: [delete]
# The image pull secrets of a Deployment's ServiceAccount (the registry release source), read by name.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get]
# The validation Jobs of runs with spec.git.validation (the author's image, in the run's namespace).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
{{- if .clusterwide }}
# kopf watches CRDs to notice resources appearing; selfHosted runs read their CRD's generation.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
# The cluster's service ranges (Kubernetes 1.33+), which the egress policy refuses to runs unless allowed.
- apiGroups: [networking.k8s.io]
  resources: [servicecidrs]
  verbs: [list]
# --namespace with a pattern (e.g. --namespace='team-*'): kopf finds the matching namespaces by watching them.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
# Argo Rollouts' AnalysisTemplates a run names (spec.analysis.templates); read only, only by name.
- apiGroups: [argoproj.io]
  resources: {{ if .clusterwide }}[analysistemplates, clusteranalysistemplates]{{ else }}[analysistemplates]{{ end }}
  verbs: [get]
# Git tokens, from the Secret a run names (spec.git.credentials.secretRef); never listed or watched.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [kopf.dev]
  resources: {{ if .clusterwide }}[clusterkopfpeerings, kopfpeerings]{{ else }}[kopfpeerings]{{ end }}
  verbs: [get, list, watch, patch, create]
{{- end -}}

{{/* The documents of a multi-document YAML file of the chart, parsed (comment-only documents dropped). */}}
{{- define "selfbootstrap.documents" -}}
{{- $docs := list -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (.root.Files.Get .path) -1 -}}
{{- $parsed := fromYaml $doc -}}
{{- if $parsed -}}{{- $docs = append $docs $parsed -}}{{- end -}}
{{- end -}}
{{- toJson $docs -}}
{{- end -}}
