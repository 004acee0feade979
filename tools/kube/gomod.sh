#!/usr/bin/env bash
# Writes the go.mod (and go.sum) of one component module under tools/kube/<component>/.
#
# Kubernetes' own go.mod requires its staging modules at v0.0.0 and maps them to
# ./staging/..., which only works inside its repository (the module zip has no staging/).
# So the kubernetes module here requires k8s.io/kubernetes and replaces every staging module
# it names with the published k8s.io/<name> at the matching v0.X.Y: the list is read from the
# published go.mod, never kept by hand. The commands are `tool` lines, so `go mod tidy` keeps
# the modules that only a main package uses.
#
#   tools/kube/gomod.sh kubernetes v1.36.3
#   tools/kube/gomod.sh etcd v3.6.x | kwok v0.8.0 | helm v4.3.2 | kueue v0.17.0
set -euo pipefail
component=${1:?component}
version=${2:?version}
here=$(cd "$(dirname "$0")" && pwd)
dir=$here/$component
mkdir -p "$dir"
cd "$dir"
rm -f go.mod go.sum
go mod init "github.com/dualcap/dualcap/tools/kube/$component" >/dev/null 2>&1

case $component in
kubernetes)
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging_version=v0.${version#v1.}
  # Kubernetes' own language version and godebug line (a dependency's godebug is ignored).
  go mod edit -go="$(sed -n 's/^go //p' "$gomod")"
  sed -n 's/^godebug //p' "$gomod" | while read -r kv; do go mod edit -godebug="$kv"; done
  go mod edit -require="k8s.io/kubernetes@$version"
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" | while read -r m; do
    go mod edit -replace="$m=$m@$staging_version"
  done
  tools="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  ;;
etcd)
  go mod edit -require="go.etcd.io/etcd/server/v3@$version"
  tools="go.etcd.io/etcd/server/v3"
  ;;
kwok)
  go mod edit -require="sigs.k8s.io/kwok@$version"
  tools="sigs.k8s.io/kwok/cmd/kwok"
  ;;
helm)
  go mod edit -require="helm.sh/helm/v4@$version"
  tools="helm.sh/helm/v4/cmd/helm"
  ;;
kueue)
  go mod edit -require="sigs.k8s.io/kueue@$version"
  tools="sigs.k8s.io/kueue/cmd/kueue"
  ;;
*) echo "gomod.sh: unknown component $component" >&2; exit 2 ;;
esac
for t in $tools; do go mod edit -tool="$t"; done
go mod tidy
echo "tools/kube/$component: go.mod written for $version"
