{{/*
Names and labels: every template takes them from here, so a name changes in one place.
*/}}

{{- define "mlcycle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's prefix: the release name alone when it already says "mlcycle" (`helm install mlcycle`). */}}
{{- define "mlcycle.fullname" -}}
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

{{/* A component's name: <fullname>-<component>, kept within a DNS label. */}}
{{- define "mlcycle.componentName" -}}
{{- printf "%s-%s" (include "mlcycle.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlcycle.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: immutable, so no version in them. */}}
{{- define "mlcycle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlcycle.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object; `component` names the part of the chart it belongs to. */}}
{{- define "mlcycle.labels" -}}
helm.sh/chart: {{ include "mlcycle.chart" .root }}
{{ include "mlcycle.selectorLabels" . }}
app.kubernetes.io/part-of: mlcycle
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The labels the step pods carry (mlcycle.orchestration.kubernetes: StepSpec.labels + POD_LABELS; KPO adds
kubernetes_pod_operator=True). The step NetworkPolicy and the orphan-pod CronJob select on them; tests/helm
checks them against the pods the DAGs build.
*/}}
{{- define "mlcycle.stepPodLabels" -}}
app.kubernetes.io/part-of: mlcycle
app.kubernetes.io/component: step
{{- end -}}

{{- define "mlcycle.stepPodSelector" -}}
app.kubernetes.io/part-of=mlcycle,app.kubernetes.io/component=step,kubernetes_pod_operator=True
{{- end -}}

{{/* The task image: by digest when one is given (production), else by tag (default: the chart's appVersion). */}}
{{- define "mlcycle.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The namespace of the step pods (and of everything they use: their ServiceAccount, ConfigMaps, quota, the cleanup
CronJob). Never the release namespace: that one holds MLflow's and the receiver's Secrets, and Airflow's
launchers may create pods in the task namespace (docs/security.md).
*/}}
{{- define "mlcycle.taskNamespace" -}}
{{- if eq .Values.tasks.namespace .Release.Namespace -}}
{{- fail (printf "tasks.namespace must differ from the release namespace %q: Airflow's workers create pods in tasks.namespace, and the release namespace holds MLflow's and the alert receiver's Secrets" .Release.Namespace) -}}
{{- end -}}
{{- .Values.tasks.namespace -}}
{{- end -}}

{{- define "mlcycle.taskServiceAccount" -}}
{{- default (include "mlcycle.componentName" (dict "root" . "component" "task")) .Values.tasks.serviceAccount.name -}}
{{- end -}}

{{- define "mlcycle.pipelineConfigMap" -}}
{{- include "mlcycle.componentName" (dict "root" . "component" "pipeline") -}}
{{- end -}}

{{- define "mlcycle.mlflowUrl" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "mlcycle.componentName" (dict "root" . "component" "mlflow")) .Release.Namespace .Values.clusterDomain (int .Values.mlflow.service.port) -}}
{{- end -}}

{{/*
The restricted Pod Security Standard, the same for every pod of the chart (and the step pods:
mlcycle.orchestration.kubernetes). The numeric user is the task image's (Dockerfile USER 10001).
*/}}
{{- define "mlcycle.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mlcycle.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Read-only root filesystem: HOME, TMPDIR and caches go to an emptyDir on /tmp. */}}
{{- define "mlcycle.scratchEnv" -}}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
{{- end -}}

{{- define "mlcycle.scratchVolume" -}}
- name: scratch
  emptyDir:
    sizeLimit: {{ .Values.scratchSize }}
{{- end -}}

{{- define "mlcycle.scratchMount" -}}
- name: scratch
  mountPath: /tmp
{{- end -}}

{{- define "mlcycle.imagePullSecrets" -}}
imagePullSecrets:
{{- range .Values.imagePullSecrets }}
  - name: {{ . }}
{{- end }}
{{- end -}}

{{/* The Spark driver's ServiceAccount (Airflow's MLCYCLE_K8S_SPARK_SERVICE_ACCOUNT): it creates its executor pods. */}}
{{- define "mlcycle.sparkDriverServiceAccount" -}}
{{- default (include "mlcycle.componentName" (dict "root" . "component" "spark-driver")) .Values.spark.driverServiceAccount.name -}}
{{- end -}}
