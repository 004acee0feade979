#!/usr/bin/env bash
# Builds the real control plane and its companions from their Go modules (tools/kube/*/go.mod)
# into $DUALCAP_KUBE_BIN (default ~/.cache/dualcap/kube-<kubernetes version>/bin). Go's module
# and build caches go under ~/.cache/dualcap/go. Nothing lands in the repository. A binary
# that exists is not built again (rm it, or the directory, to rebuild).
#
#   tools/kube/build.sh [component ...]   components: kubernetes etcd kwok helm kueue (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
cache=${DUALCAP_CACHE:-$HOME/.cache/dualcap}
bin=${DUALCAP_KUBE_BIN:-$cache/kube-$KUBERNETES_VERSION/bin}
export GOMODCACHE=${GOMODCACHE:-$cache/go/mod} GOCACHE=${GOCACHE:-$cache/go/build}
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local
mkdir -p "$bin" "$cache/logs"

command -v go >/dev/null || { echo "kube-bins: no 'go' on PATH: the real control plane is built with Go >= 1.26" >&2; exit 1; }

# One build step: the binary's name, the package, the module directory, extra ldflags.
build() {
  local name=$1 pkg=$2 mod=$3 ldflags=${4:-}
  if [ -x "$bin/$name" ]; then
    echo "kube-bins: $name is built ($bin/$name)"
    return
  fi
  local log=$cache/logs/build-$name.log
  echo "kube-bins: building $name from $pkg (log: $log)"
  if ! (cd "$here/$mod" && go build -tags notest -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg") >"$log" 2>&1; then
    echo "kube-bins: building $name failed; the last lines of $log:" >&2
    tail -n 30 "$log" >&2
    rm -f "$bin/$name.tmp"
    exit 1
  fi
  mv "$bin/$name.tmp" "$bin/$name"
}

k8s_version_flags() {
  local v=$KUBERNETES_VERSION minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local f=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    f="$f -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$f"
}

components=${*:-kubernetes etcd kwok helm kueue}
for c in $components; do
  case $c in
  kubernetes)
    for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
      build "$cmd" "k8s.io/kubernetes/cmd/$cmd" kubernetes "$(k8s_version_flags)"
    done ;;
  etcd) build etcd go.etcd.io/etcd/server/v3 etcd "-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" ;;
  kwok)
    build kwok sigs.k8s.io/kwok/cmd/kwok kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
    # The bare kwok controller needs its stages: kwok's own "fast" ones, taken from the module.
    src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
    mkdir -p "$bin/../kwok"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"; cat "$src/$f"
    done >"$bin/../kwok/stages.yaml" ;;
  helm) build helm helm.sh/helm/v4/cmd/helm helm "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" ;;
  kueue)
    build kueue sigs.k8s.io/kueue/cmd/kueue kueue "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION"
    # Kueue's CRDs and webhook configurations, from the module's own config/.
    src=$(cd "$here/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)/config/components
    rm -rf "$bin/../kueue/crds" && mkdir -p "$bin/../kueue/crds" && cp "$src"/crd/bases/*.yaml "$bin/../kueue/crds/"
    cp "$src/webhook/manifests.yaml" "$bin/../kueue/webhooks.yaml" ;;
  *) echo "kube-bins: unknown component $c (kubernetes etcd kwok helm kueue)" >&2; exit 2 ;;
  esac
done
echo "kube-bins: $bin"
