#!/usr/bin/env bash
# Builds the lab's upstream binaries from their Go modules: kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl (k8s.io/kubernetes), etcd (its server
# module, at the version that Kubernetes release uses), helm (helm.sh/helm/v3) and tutor-kubelet
# (k8s/cmd/tutor-kubelet: the lab nodes' kubelet API, on k8s.io/kubelet's streaming server), and
# agnhost (k8s.io/kubernetes/test/images/agnhost: the program of the e2e image the lab's pods play),
# kube-proxy (k8s.io/kubernetes/cmd/kube-proxy, run by the lab as kind runs it: a DaemonSet) and
# CoreDNS (k8s/coredns: github.com/coredns/coredns with the plugins of the cluster DNS), and
# http-echo (github.com/hashicorp/http-echo: the program of the hashicorp/http-echo image).
#
# The pins are the modules' versions in k8s/go.mod and k8s/helm/go.mod (see docs/architecture.md,
# "Upstream binaries"). The binaries land in
#     ${TUTOR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tutor/k8s}/<kubernetes version>/bin/
# which is where tutor looks for them (src/backend/lab/upstream.rs). A build is skipped when the
# stamp there matches the inputs (go.mod, go.sum, the local mains, this script); a rebuild with
# a warm Go build cache only links.
#
# Usage: bash k8s/build.sh [--force] [--print-dir]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
print_dir=0
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --print-dir) print_dir=1 ;;
    *) echo "k8s/build.sh: unknown argument $a (usage: k8s/build.sh [--force] [--print-dir])" >&2; exit 2 ;;
  esac
done

# The version of a module required in a go.mod (block or single-line form).
required() { # go.mod module
  awk -v m="$2" '($1 == m) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$1"
}
k8s_version=$(required "$here/go.mod" k8s.io/kubernetes)
helm_version=$(required "$here/helm/go.mod" helm.sh/helm/v3)
coredns_version=$(required "$here/coredns/go.mod" github.com/coredns/coredns)
[[ -n $k8s_version && -n $helm_version ]] || { echo "k8s/build.sh: no k8s.io/kubernetes or helm.sh/helm/v3 pin in k8s/go.mod, k8s/helm/go.mod" >&2; exit 2; }

cache=${TUTOR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tutor/k8s}
out=$cache/$k8s_version/bin
if ((print_dir)); then echo "$out"; exit 0; fi

# Pre-flight: Go at least the version the modules declare, and no silent toolchain download.
need=$(awk '$1 == "go" { print $2; exit }' "$here/go.mod")
for f in "$here/helm/go.mod" "$here/coredns/go.mod"; do
  v=$(awk '$1 == "go" { print $2; exit }' "$f")
  [[ $(printf '%s\n%s\n' "$need" "$v" | sort -V | tail -1) == "$v" ]] && need=$v
done
if ! command -v go >/dev/null 2>&1; then
  echo "k8s/build.sh: Go $need or newer is needed to build the lab's Kubernetes binaries and none is on PATH;" >&2
  echo "  install it from https://go.dev/dl/ (tar -C /usr/local -xzf go*.linux-amd64.tar.gz; PATH=\$PATH:/usr/local/go/bin)" >&2
  exit 2
fi
have=$(go env GOVERSION | sed 's/^go//')
if [[ $(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1) != "$need" ]]; then
  echo "k8s/build.sh: Go $need or newer is needed (k8s/go.mod); $(command -v go) is Go $have;" >&2
  echo "  install a newer one from https://go.dev/dl/" >&2
  exit 2
fi
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

stamp=$( (cd "$here" && cat go.mod go.sum helm/go.mod helm/go.sum coredns/go.mod coredns/go.sum build.sh && find cmd coredns/cmd -type f -name '*.go' | sort | xargs cat) | sha256sum | cut -d' ' -f1)
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm tutor-kubelet agnhost kube-proxy coredns http-echo)
if ((!force)) && [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
  ok=1
  for b in "${bins[@]}"; do [[ -x $out/$b ]] || ok=0; done
  if ((ok)); then echo "k8s/build.sh: Kubernetes $k8s_version, helm $helm_version up to date in $out"; exit 0; fi
fi

# Version info as the release builds set it, so that `kubectl version` and the nodes' VERSION
# column print the pin. The commit and date come from the module proxy's record of the tag.
info_field() { # module@version field
  local info
  info=$(cd "$2" && go mod download -json "$1" | sed -n 's/.*"Info": "\(.*\)",/\1/p')
  [[ -f $info ]] && sed -n "s/.*\"$3\":\"\\([^\"]*\\)\".*/\\1/p" "$info" || true
}
k8s_commit=$(info_field "k8s.io/kubernetes@$k8s_version" "$here" Hash)
k8s_date=$(info_field "k8s.io/kubernetes@$k8s_version" "$here" Time)
minor=${k8s_version#v1.}; minor=${minor%%.*}
kv=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kv+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kv+=" -X $pkg.gitCommit=$k8s_commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=${k8s_date:-1970-01-01T00:00:00Z}"
done
hv="-X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  hv+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done

mkdir -p "$out"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "k8s/build.sh: building Kubernetes $k8s_version (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kube-proxy, tutor-kubelet, agnhost, http-echo), helm $helm_version and CoreDNS $coredns_version into $out"
(cd "$here" && go build -trimpath -ldflags "-s -w$kv" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-proxy \
  ./cmd/etcd ./cmd/tutor-kubelet k8s.io/kubernetes/test/images/agnhost github.com/hashicorp/http-echo)
(cd "$here/helm" && go build -trimpath -ldflags "-s -w $hv" -o "$tmp/" helm.sh/helm/v3/cmd/helm)
cv="-X github.com/coredns/coredns/coremain.GitCommit=$coredns_version"
(cd "$here/coredns" && go build -trimpath -ldflags "-s -w $cv" -o "$tmp/" ./cmd/coredns)
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$stamp" > "$out/.stamp"
echo "k8s/build.sh: done in $(($(date +%s) - start)) s"
