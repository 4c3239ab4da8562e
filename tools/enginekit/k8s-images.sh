#!/usr/bin/env bash
# Stand-ins for the official control-plane images `dagger call sandbox` runs, for the engine kit of
# /work/shared/engine on a machine that cannot pull registry.k8s.io:
#   registry.k8s.io/kube-apiserver:v1.37.2           /usr/local/bin/kube-apiserver
#   registry.k8s.io/kube-controller-manager:v1.37.2  /usr/local/bin/kube-controller-manager
#   registry.k8s.io/etcd:3.7.0-0                     /usr/local/bin/etcd
# The versions are read, not written here: Kubernetes from tools/testcluster/go.mod (built with its
# mandatory replace block and the version stamp of testcluster/build.go), etcd from the same go.mod's
# go.etcd.io/etcd/server/v3 (its main package is etcd's), and the etcd tag is kubeadm's
# DefaultEtcdVersion for that Kubernetes release, which must name the same etcd.
#
# Like upstream's, the binaries are static (CGO_ENABLED=0) and stripped, at the paths the official
# images keep them (build/server-image/Dockerfile, cluster/images/etcd/Dockerfile), on a minimal base
# laid out like distroless/static (passwd, group, nsswitch.conf, CA bundle, /tmp). Differences: no
# /go-runner (the kube images' entrypoint is the binary itself), no etcdctl/migrate and no /bin/sh in
# the etcd image, one platform (linux/amd64), no file capability on kube-apiserver.
#
# They are pushed with crane to the kit's loopback registry under the paths the engine asks a
# registry.k8s.io mirror for (127.0.0.1:5001/kube-apiserver:v1.37.2, ...). The engine must mirror
# registry.k8s.io there: engine.json (written by the kit's start.sh) needs
#   {"registries": {"docker.io": {"mirrors": ["127.0.0.1:5001"]}, "registry.k8s.io": {"mirrors": ["127.0.0.1:5001"]}}}
# This script never starts or stops the registry or the engine: without a registry it builds and
# says so; run it again once the registry is up.
#
# Outputs are cached under $TOP/k8s-images/<versions> (Go's caches are the user's): a second run
# builds nothing. Cold: about 10 minutes on 2 cores (kube-apiserver and kube-controller-manager share
# most packages).
#   TOP=/opt/dagger-local REG=127.0.0.1:5001 tools/enginekit/k8s-images.sh
set -euo pipefail
TOP=${TOP:-/opt/dagger-local}
REG=${REG:-127.0.0.1:5001}
CRANE=${CRANE:-$TOP/bin/crane}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../testcluster" && pwd)

gomod() { (cd "$src" && GOWORK=off go list -m -f "$1" "$2"); }
K8S=$(gomod '{{.Version}}' k8s.io/kubernetes)
ETCD=$(gomod '{{.Version}}' go.etcd.io/etcd/server/v3)
(cd "$src" && GOWORK=off go mod download k8s.io/kubernetes)
constants=$(gomod '{{.Dir}}' k8s.io/kubernetes)/cmd/kubeadm/app/constants/constants.go
ETCD_TAG=$(sed -n 's/^[[:space:]]*DefaultEtcdVersion = "\(.*\)"/\1/p' "$constants")
case "$ETCD_TAG" in
  "${ETCD#v}"-*) ;;
  *) echo "kubeadm $K8S pins etcd $ETCD_TAG but tools/testcluster/go.mod has $ETCD: align them" >&2; exit 1 ;;
esac
major=${K8S#v}; major=${major%%.*}
minor=${K8S#v*.}; minor=${minor%%.*}

out=$TOP/k8s-images/kubernetes-$K8S-etcd-$ETCD
mkdir -p "$out"
build() { # binary package ldflags
  local bin=$1 pkg=$2 ldflags=$3
  [ -x "$out/bin/$bin" ] && return 0
  echo "== build $bin from $pkg"
  mkdir -p "$out/bin"
  time (cd "$src" && GOWORK=off CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags "$ldflags" -o "$out/bin/$bin.tmp" "$pkg")
  mv "$out/bin/$bin.tmp" "$out/bin/$bin"
}
stamp="-s -w -X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
build etcd go.etcd.io/etcd/server/v3 "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-proxy-$ETCD"

# The base layer: what distroless/static gives a static binary.
if [ ! -s "$out/base.tar" ]; then
  b=$out/base; rm -rf "$b"; mkdir -p "$b/etc/ssl/certs" "$b/tmp" "$b/root" "$b/home/nonroot" "$b/usr/local/bin"
  chmod 1777 "$b/tmp"; chmod 0700 "$b/root"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$b/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$b/etc/group"
  printf 'hosts: files dns\n' > "$b/etc/nsswitch.conf"
  printf 'PRETTY_NAME="ringg-ci stand-in for distroless/static"\n' > "$b/etc/os-release"
  cp /etc/ssl/certs/ca-certificates.crt "$b/etc/ssl/certs/ca-certificates.crt"
  tar --owner=0 --group=0 --numeric-owner -C "$b" -cf "$out/base.tar.tmp" .
  mv "$out/base.tar.tmp" "$out/base.tar"
  rm -rf "$b"
fi
for bin in kube-apiserver kube-controller-manager etcd; do
  [ -s "$out/$bin.tar" ] && continue
  rm -rf "$out/layer-$bin"; mkdir -p "$out/layer-$bin/usr/local/bin"
  cp "$out/bin/$bin" "$out/layer-$bin/usr/local/bin/$bin"
  tar --owner=0 --group=0 --numeric-owner -C "$out/layer-$bin" -cf "$out/$bin.tar.tmp" .
  mv "$out/$bin.tar.tmp" "$out/$bin.tar"
  rm -rf "$out/layer-$bin"
done
echo "built in $out: $(cd "$out/bin" && ls | tr '\n' ' ')"

if ! curl -fsS "http://$REG/v2/" >/dev/null 2>&1; then
  echo "no registry answers at $REG: start the engine kit's registry (its start.sh), then run this again to push" >&2
  exit 2
fi
ENV=(-e PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin -e SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
push() { # ref binary [mutate-args...]
  local ref=$1 bin=$2; shift 2
  "$CRANE" append --oci-empty-base -f "$out/base.tar" -f "$out/$bin.tar" -t "$REG/$ref.tmp" >/dev/null
  "$CRANE" mutate "$REG/$ref.tmp" --set-platform linux/amd64 "${ENV[@]}" -w / "$@" -t "$REG/$ref" >/dev/null
  echo "pushed $REG/$ref $("$CRANE" digest "$REG/$ref") (stands in for registry.k8s.io/$ref)"
}
push "kube-apiserver:$K8S" kube-apiserver --entrypoint /usr/local/bin/kube-apiserver
push "kube-controller-manager:$K8S" kube-controller-manager --entrypoint /usr/local/bin/kube-controller-manager
push "etcd:$ETCD_TAG" etcd --exposed-ports 2379/tcp,2380/tcp

json=$TOP/rootfs/engine/etc/dagger/engine.json
if ! grep -q '"registry.k8s.io"' "$json" 2>/dev/null; then
  echo "note: $json has no registry.k8s.io mirror yet; the engine pulls these only once it mirrors registry.k8s.io to $REG" >&2
fi
