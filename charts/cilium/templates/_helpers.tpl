{{/*
An image reference from {repository, tag, digest, useDigest}: "repo:tag", with "@digest" after
it when the digest is known and wanted.
*/}}
{{- define "tutor-cilium.image" -}}
{{- $ref := printf "%s:%s" .repository .tag -}}
{{- if and .useDigest .digest -}}
{{- $ref = printf "%s@%s" $ref .digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The operator's image: the generic build of the operator. */}}
{{- define "tutor-cilium.operatorImage" -}}
{{- $ref := printf "%s-generic%s:%s" .repository (.suffix | default "") .tag -}}
{{- if and .useDigest .genericDigest -}}
{{- $ref = printf "%s@%s" $ref .genericDigest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* "major.minor" of the chart, for the documentation's versioned links. */}}
{{- define "tutor-cilium.docsVersion" -}}
{{- $v := semver .Chart.Version -}}
{{- printf "v%d.%d" $v.Major $v.Minor -}}
{{- end -}}

{{/* The routing mode in force: an empty routingMode means tunnel. */}}
{{- define "tutor-cilium.routingMode" -}}
{{- .Values.routingMode | default "tunnel" -}}
{{- end -}}

{{/*
kubeProxyReplacement as given: "true"/"false", or one of the words of the releases before 1.14
("strict", "partial", "disabled"), which the charts served here still write as they are.
*/}}
{{- define "tutor-cilium.kpr" -}}
{{- toString .Values.kubeProxyReplacement -}}
{{- end -}}

{{/* Labels every object of the release carries. */}}
{{- define "tutor-cilium.partOf" -}}
app.kubernetes.io/part-of: cilium
{{- end -}}
