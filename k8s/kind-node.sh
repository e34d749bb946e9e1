#!/usr/bin/env bash
# Builds kind and the kind node image `tutor/kind-node:<kubernetes version>` here, from the
# registries this project reaches: Debian's packages and the Go module proxy. No container
# registry is used: every image the cluster runs is made by this script.
#
# - kind: sigs.k8s.io/kind at the pin in k8s/kind/go.mod.
# - kubelet and kubeadm: k8s.io/kubernetes at the pin in k8s/go.mod, built in k8s/node (a module
#   with k8s/go.mod's requirements plus what the kubelet needs), with the pause and tutor-kindnet
#   mains of k8s/node/cmd.
# - CNI plugins: github.com/containernetworking/plugins at the pin in k8s/cni/go.mod.
# - The control-plane images kubeadm runs (kube-apiserver, kube-controller-manager,
#   kube-scheduler, kube-proxy, etcd, CoreDNS, pause) and the default CNI's image: one layer
#   each with the Go binaries that k8s/build.sh built (run first; it does nothing when up to
#   date), plus Debian's iptables for the two that program it, and busybox:1.36 (Debian's static
#   busybox) for the workloads tutorials run. Saved into the node image and
#   imported into its containerd when a node boots, before the kubelet starts.
# - The node's root filesystem: Debian bookworm by debootstrap (systemd, containerd, runc,
#   iptables, ...), the files in k8s/kind-node/ (entrypoint, units, containerd configuration,
#   /kind/manifests/default-cni.yaml) and the binaries above.
#
# Everything lands in ${TUTOR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tutor/k8s}/<version>/kind/
# (bin/kind is what tutor runs) and the image in the Docker engine that answers. Separate stamps
# (of the Debian package list, and of all inputs) skip what is up to date; a missing image is
# imported again. k8s/build.sh's own stamp is not affected by anything here.
#
# Usage: bash k8s/kind-node.sh [--force] [--print-dir] [--kind-only]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
print_dir=0
kind_only=0
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --print-dir) print_dir=1 ;;
    --kind-only) kind_only=1 ;;
    *) echo "k8s/kind-node.sh: unknown argument $a (usage: k8s/kind-node.sh [--force] [--print-dir] [--kind-only])" >&2; exit 2 ;;
  esac
done

required() { # go.mod module
  awk -v m="$2" '($1 == m) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$1"
}
k8s_version=$(required "$here/go.mod" k8s.io/kubernetes)
kind_version=$(required "$here/kind/go.mod" sigs.k8s.io/kind)
etcd_version=$(required "$here/go.mod" go.etcd.io/etcd/server/v3)
coredns_version=$(required "$here/coredns/go.mod" github.com/coredns/coredns)
[[ -n $k8s_version && -n $kind_version && -n $etcd_version && -n $coredns_version ]] || { echo "k8s/kind-node.sh: a pin is missing in k8s/go.mod, k8s/kind/go.mod or k8s/coredns/go.mod" >&2; exit 2; }
image=tutor/kind-node:$k8s_version

cache=${TUTOR_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tutor/k8s}
out=$cache/$k8s_version/kind
if ((print_dir)); then echo "$out"; exit 0; fi

command -v go >/dev/null 2>&1 || { echo "k8s/kind-node.sh: Go is needed (see k8s/build.sh)" >&2; exit 2; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly
start=$(date +%s)
log() { echo "k8s/kind-node.sh: $*"; }

# 1. kind itself, and the runc wrapper a dockerd started for it uses (k8s/docker/tutor-runc).
kind_stamp=$( (cd "$here" && cat kind/go.mod kind/go.sum kind-node.sh docker/tutor-runc) | sha256sum | cut -d' ' -f1)
if ((force)) || [[ ! -x $out/bin/kind || $(cat "$out/.kind-stamp" 2>/dev/null) != "$kind_stamp" ]]; then
  log "building kind $kind_version into $out/bin"
  mkdir -p "$out/bin"
  (cd "$here/kind" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$out/bin/kind.new" sigs.k8s.io/kind)
  mv -f "$out/bin/kind.new" "$out/bin/kind"
  install -m 0755 "$here/docker/tutor-runc" "$out/bin/tutor-runc"
  echo "$kind_stamp" > "$out/.kind-stamp"
fi
if ((kind_only)); then log "kind $kind_version in $out/bin"; exit 0; fi

# 2. The node image: pre-flight.
for t in docker debootstrap; do
  command -v $t >/dev/null 2>&1 || { echo "k8s/kind-node.sh: $t is needed (apt-get install docker.io debootstrap)" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "k8s/kind-node.sh: no Docker engine answers (start dockerd, or let tutor start it: TUTOR_START_DOCKERD=1)" >&2; exit 2; }

bash "$here/build.sh"
labbin=$(bash "$here/build.sh" --print-dir)

stamp=$( (cd "$here" && cat go.mod go.sum node/go.mod node/go.sum cni/go.mod cni/go.sum kind-node.sh \
  && find node/cmd kind-node -type f | sort | xargs cat; cat "$labbin/.stamp") | sha256sum | cut -d' ' -f1)
if ((!force)) && [[ $(cat "$out/.stamp" 2>/dev/null) == "$stamp" ]] && docker image inspect "$image" >/dev/null 2>&1; then
  log "$image up to date (kind $kind_version in $out/bin)"
  exit 0
fi

# 3. Go binaries of the node.
info_field() { # module@version dir field
  local info
  info=$(cd "$2" && go mod download -json "$1" | sed -n 's/.*"Info": "\(.*\)",/\1/p')
  [[ -f $info ]] && sed -n "s/.*\"$3\":\"\\([^\"]*\\)\".*/\\1/p" "$info" || true
}
k8s_commit=$(info_field "k8s.io/kubernetes@$k8s_version" "$here/node" Hash)
k8s_date=$(info_field "k8s.io/kubernetes@$k8s_version" "$here/node" Time)
minor=${k8s_version#v1.}; minor=${minor%%.*}
kv=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kv+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kv+=" -X $pkg.gitCommit=$k8s_commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=${k8s_date:-1970-01-01T00:00:00Z}"
done
mkdir -p "$out/bin" "$out/cni"
log "building kubelet, kubeadm, pause, tutor-kindnet ($k8s_version) and the CNI plugins"
(cd "$here/node" && nice -n 10 go build -trimpath -ldflags "-s -w$kv" -o "$out/bin/" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubeadm ./cmd/pause ./cmd/tutor-kindnet)
cni=github.com/containernetworking/plugins/plugins
(cd "$here/cni" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$out/cni/" \
  $cni/main/ptp $cni/main/bridge $cni/main/loopback $cni/ipam/host-local $cni/meta/portmap)

# 4. Debian's root filesystem, cached by its package list.
packages=systemd,systemd-sysv,dbus,containerd,runc,iptables,nftables,conntrack,iproute2,ethtool,kmod,libseccomp2,pigz,ca-certificates,procps,socat,iputils-ping,less,busybox-static
suite=bookworm
mirror=${TUTOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs_stamp="$suite $packages"
if [[ ! -d $out/rootfs || $(cat "$out/.rootfs-stamp" 2>/dev/null) != "$rootfs_stamp" ]]; then
  log "debootstrap $suite ($packages) from $mirror"
  rm -rf "$out/rootfs.new"
  nice -n 10 debootstrap --variant=minbase --include="$packages" "$suite" "$out/rootfs.new" "$mirror" > "$out/debootstrap.log" 2>&1 \
    || { tail -20 "$out/debootstrap.log" >&2; echo "k8s/kind-node.sh: debootstrap failed (log: $out/debootstrap.log)" >&2; exit 1; }
  rm -rf "$out/rootfs.new/var/cache/apt/archives/"*.deb "$out/rootfs.new/var/lib/apt/lists/"* "$out/rootfs"
  mv "$out/rootfs.new" "$out/rootfs"
  echo "$rootfs_stamp" > "$out/.rootfs-stamp"
fi
rootfs=$out/rootfs

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 5. Component images: one layer each, saved as Docker archives for the node's containerd.
# Debian's iptables (nft backend) with the libraries it loads, for kube-proxy and tutor-kindnet.
iptables_layer() { # dir
  local d=$1 f
  mkdir -p "$d/usr/sbin" "$d/etc"
  cp -a "$rootfs/usr/sbin/xtables-nft-multi" "$d/usr/sbin/"
  for f in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-nft-multi "$d/usr/sbin/$f"
  done
  cp -a "$rootfs/etc/protocols" "$rootfs/etc/ethertypes" "$d/etc/" 2>/dev/null || true
  (cd "$rootfs" && find usr/lib/x86_64-linux-gnu/xtables -name '*.so'; \
    for f in usr/sbin/xtables-nft-multi usr/lib/x86_64-linux-gnu/xtables/*.so; do chroot "$rootfs" ldd "/$f"; done \
      | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sed 's#^/##') \
    | sort -u | while read -r f; do
      mkdir -p "$d/$(dirname "$f")"
      cp -L "$rootfs/$f" "$d/$f"
    done
  # the loader and libc at the paths the binaries name
  mkdir -p "$d/lib64" "$d/lib"; [[ -e $d/lib64/ld-linux-x86-64.so.2 ]] || cp -L "$rootfs/lib64/ld-linux-x86-64.so.2" "$d/lib64/"
}
component() { # name tag entrypoint-binary [iptables]
  local name=$1 tag=$2 bin=$3 d=$work/img-${1##*/}
  mkdir -p "$d/usr/local/bin" "$d/tmp" "$d/etc"
  chmod 1777 "$d/tmp"
  cp "$bin" "$d/usr/local/bin/"
  echo "root:x:0:0:root:/root:/sbin/nologin" > "$d/etc/passwd"
  echo "nobody:x:65534:65534:nobody:/:/sbin/nologin" >> "$d/etc/passwd"
  [[ ${4:-} == iptables ]] && iptables_layer "$d"
  tar -C "$d" -c . | docker import \
    --change "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENTRYPOINT [\"/usr/local/bin/$(basename "$bin")\"]" - "$name:$tag" >/dev/null
  rm -rf "$d"
  images+=("$name:$tag")
}
images=()
reg=registry.k8s.io
log "making the component images"
component $reg/kube-apiserver "$k8s_version" "$labbin/kube-apiserver"
component $reg/kube-controller-manager "$k8s_version" "$labbin/kube-controller-manager"
component $reg/kube-scheduler "$k8s_version" "$labbin/kube-scheduler"
component $reg/kube-proxy "$k8s_version" "$labbin/kube-proxy" iptables
component $reg/etcd "${etcd_version#v}-0" "$labbin/etcd"
component $reg/coredns/coredns "$coredns_version" "$labbin/coredns"
component $reg/pause 3.10 "$out/bin/pause"
component tutor/kindnetd "$k8s_version" "$out/bin/tutor-kindnet" iptables
# The workload image the tutorials and tests run (busybox:1.36): Debian's static busybox with
# its applets as links, the shell as entrypoint's default command.
d=$work/img-busybox
mkdir -p "$d/bin" "$d/tmp" "$d/etc" "$d/root"
chmod 1777 "$d/tmp"
cp "$rootfs/bin/busybox" "$d/bin/busybox"
for a in $(chroot "$rootfs" /bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$d/bin/$a"; done
printf '%s\n' "root:x:0:0:root:/root:/bin/sh" "nobody:x:65534:65534:nobody:/home:/bin/false" > "$d/etc/passwd"
printf '%s\n' "root:x:0:" "nogroup:x:65534:" > "$d/etc/group"
tar -C "$d" -c . | docker import --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change 'CMD ["sh"]' - busybox:1.36 >/dev/null
rm -rf "$d"
images+=(busybox:1.36)

# 6. The node's tree.
node=$work/node
log "assembling the node's root filesystem"
cp -a "$rootfs" "$node"
cp -a "$here/kind-node/." "$node/"
install -m 0755 "$out/bin/kubelet" "$out/bin/kubeadm" "$labbin/kubectl" "$node/usr/bin/"
mkdir -p "$node/opt/cni/bin" "$node/etc/cni/net.d" "$node/kind/images" "$node/etc/kubernetes/manifests"
install -m 0755 "$out/cni/"* "$node/opt/cni/bin/"
echo "$k8s_version" > "$node/kind/version"
sed -i "s#@KINDNET_IMAGE@#tutor/kindnetd:$k8s_version#" "$node/kind/manifests/default-cni.yaml"
docker save "${images[@]}" > "$node/kind/images/images.tar"
chmod 0755 "$node/usr/local/bin/entrypoint"
# systemd in a container: no consoles, udev, binfmt or kernel log; journald to the console.
(cd "$node" && rm -f etc/systemd/system/*.wants/* lib/systemd/system/multi-user.target.wants/* \
  lib/systemd/system/local-fs.target.wants/* lib/systemd/system/sockets.target.wants/*udev* \
  lib/systemd/system/sockets.target.wants/*initctl* lib/systemd/system/basic.target.wants/* \
  lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service)
echo "ReadKMsg=no" >> "$node/etc/systemd/journald.conf"
chroot "$node" systemctl enable containerd.service kubelet.service tutor-preload-images.service >/dev/null 2>&1
chroot "$node" systemctl mask systemd-binfmt.service getty@tty1.service console-getty.service systemd-udevd.service >/dev/null 2>&1 || true
: > "$node/etc/machine-id"
tar -C "$node" -c . | docker import - "$image-rootfs" >/dev/null
# `docker import` cannot set a stop signal: a one-line build adds the image's settings (systemd
# shuts down on SIGRTMIN+3).
printf '%s\n' "FROM $image-rootfs" "ENV container=docker" "STOPSIGNAL SIGRTMIN+3" \
  'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' | DOCKER_BUILDKIT=0 docker build -q -t "$image" - >/dev/null 2>"$work/build.err" \
  || { cat "$work/build.err" >&2; exit 1; }
docker rmi "$image-rootfs" >/dev/null
docker rmi "${images[@]}" >/dev/null 2>&1 || true
echo "$stamp" > "$out/.stamp"
log "$image built in $(($(date +%s) - start)) s (kind $kind_version in $out/bin)"
