#!/usr/bin/env bash
# Builds the real Kubernetes control plane the Kubernetes tests run against
# (make test-k8s): kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd and kwok, from the Go module proxy, into a cache folder outside the
# repository, and prints that folder as its last line:
#
#   DIR/bin/kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                            k8s.io/kubernetes $K8S_VERSION, cmd/* (kubectl
#                            drives the k8s.mk targets in the tests)
#   DIR/bin/etcd             go.etcd.io/etcd/server/v3 etcdmain.Main, at the
#                            version kube-apiserver's own go.mod requires
#   DIR/bin/kwok             sigs.k8s.io/kwok $KWOK_VERSION (pods Running and
#                            Ready without a kubelet or containers)
#   DIR/stages/*.yaml        kwok's stage files (node and pod lifecycles)
#   DIR/crds/*.yaml          the CustomResourceDefinitions kmt's manifests
#                            use, from their projects' Go modules: the
#                            Prometheus Operator's PodMonitor, Chaos Mesh's
#                            NetworkChaos and PodChaos
#
# Idempotent: a complete DIR is reused at once; concurrent runs wait for
# each other (flock on DIR.lock). A cold build compiles the
# API server from source and takes 10-20 minutes on two cores; it runs at
# the lowest CPU priority (nice 19) so it can run beside other work.
#
#   KMT_CACHE     cache root (default: $XDG_CACHE_HOME/kmt or ~/.cache/kmt)
#   K8S_VERSION   Kubernetes release (default 1.37.2)
#   KWOK_VERSION  kwok release (default 0.8.0)
#   PROMETHEUS_OPERATOR_VERSION  module version of the PodMonitor CRD
#                 (default v0.85.0)
#   CHAOS_MESH_VERSION  module version of the Chaos Mesh CRDs (default: a
#                 pseudo-version of master; the proxy serves no v2 tag of
#                 github.com/chaos-mesh/chaos-mesh, whose module path has no
#                 /v2 suffix)
#
# Nothing from Kubernetes is committed to kmt: the sources come from the
# module cache (go mod download) and are patched in a scratch folder that
# is removed afterwards.
set -euo pipefail
k8s_version=${K8S_VERSION:-1.37.2}
kwok_version=${KWOK_VERSION:-0.8.0}
cache=${KMT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kmt}
dir="$cache/k8s-$k8s_version"
stamp="$dir/.complete"
want="kubernetes v$k8s_version (stamped) kwok v$kwok_version"
pom_version=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
chaos_version=${CHAOS_MESH_VERSION:-v0.9.1-0.20260902003049-47411975a8cb}
GO=${GO:-go}
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
# The build stands alone: no workspace, no vendor folder, the module graph
# resolved from the proxy.
export GOWORK=off GOFLAGS=-mod=mod

# moddir MODULE@VERSION: downloads a module and prints its folder.
moddir() {
	local d
	d=$("$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$d" ] || { echo "make k8s-testbin: go mod download $1 gave no source folder" >&2; exit 1; }
	echo "$d"
}

# One build at a time per folder: a second run (make test-k8s while a
# background make k8s-testbin is still building) waits for the first, then
# finds its result.
mkdir -p "$dir"
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir.lock"
	flock 9
fi

# The CRDs (cheap: fetched whenever missing, before the binaries' check).
crds="$dir/crds"
crdstamp="$crds/.complete"
crdwant="prometheus-operator $pom_version chaos-mesh $chaos_version"
if ! [ -f "$crdstamp" ] || [ "$(cat "$crdstamp")" != "$crdwant" ]; then
	mkdir -p "$dir"
	rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
	pom=$(moddir "github.com/prometheus-operator/prometheus-operator@$pom_version")
	cp "$pom/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" "$crds.tmp/"
	chaos=$(moddir "github.com/chaos-mesh/chaos-mesh@$chaos_version")
	cp "$chaos/config/crd/bases/chaos-mesh.org_networkchaos.yaml" "$chaos/config/crd/bases/chaos-mesh.org_podchaos.yaml" "$crds.tmp/"
	chmod u+w "$crds.tmp"/*.yaml
	echo "$crdwant" >"$crds.tmp/.complete"
	rm -rf "$crds" && mv "$crds.tmp" "$crds"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
	[ -x "$dir/bin/kube-apiserver" ] && [ -x "$dir/bin/kube-controller-manager" ] &&
	[ -x "$dir/bin/kube-scheduler" ] && [ -x "$dir/bin/kubectl" ] && [ -x "$dir/bin/etcd" ] && [ -x "$dir/bin/kwok" ]; then
	echo "$dir"
	exit 0
fi

nice=(nice -n 19)
command -v nice >/dev/null 2>&1 || nice=()

start=$(date +%s)
echo "make k8s-testbin: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v$k8s_version, etcd and kwok v$kwok_version into $dir (10-20 minutes on two cores)" >&2
mkdir -p "$dir"
work="$dir/build.$$"
rm -rf "$work"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/stages"

# --- The control plane and etcd --------------------------------------------
# The k8s.io/kubernetes module zip has no staging/ folder: its go.mod points
# every k8s.io/* staging module at ./staging/src/k8s.io/*. Point them at the
# published v0.<minor>.<patch> modules instead and drop the sample modules,
# which are not published.
modsrc=$(moddir "k8s.io/kubernetes@v$k8s_version")
src="$work/kubernetes"
cp -r "$modsrc" "$src"
chmod -R u+w "$src"
staging=v0.${k8s_version#*.}
edits=()
while read -r mod; do
	case "$mod" in
	k8s.io/sample-*) edits+=("-dropreplace=$mod" "-droprequire=$mod") ;;
	*) edits+=("-replace=$mod=$mod@$staging") ;;
	esac
done < <(sed -n 's:^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*:\1:p' "$src/go.mod")
[ ${#edits[@]} -gt 0 ] || { echo "make k8s-testbin: no staging replaces found in k8s.io/kubernetes's go.mod" >&2; exit 1; }
(cd "$src" && "$GO" mod edit "${edits[@]}")

# etcd: a tiny main calling etcdmain.Main, built in the same module graph
# as kube-apiserver, so it is the etcd version Kubernetes is tested with.
mkdir -p "$src/cmd/etcd"
cat >"$src/cmd/etcd/main.go" <<'EOF'
// Command etcd runs etcd's server (etcdmain.Main), built by kmt's
// scripts/k8s-testbin.sh for the Kubernetes tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF

# One go build for them all shares every common package. The version
# variables are stamped as Kubernetes' own build does (the module copy has
# no git metadata to derive them from).
minor=${k8s_version#*.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $pkg.gitVersion=v$k8s_version -X $pkg.gitMajor=${k8s_version%%.*} -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
(cd "$src" && "${nice[@]}" "$GO" build -trimpath -ldflags "$ldflags" -o "$work/bin/" \
	./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/etcd ./cmd/kubectl) >&2

# --- kwok ------------------------------------------------------------------
# kwok's go.mod has no replaces, so go install builds it as published.
GOBIN="$work/bin" "${nice[@]}" "$GO" install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@v$kwok_version" >&2
kwoksrc=$(moddir "sigs.k8s.io/kwok@v$kwok_version")
# The stages: nodes become Ready, pods Running and Ready at once, and
# deleted pods go away (no kubelet finalizes them).
for s in node/fast node/heartbeat pod/fast; do
	for f in "$kwoksrc/kustomize/stage/$s"/*.yaml; do
		[ "$(basename "$f")" = kustomization.yaml ] && continue
		cp "$f" "$work/stages/${s//\//-}-$(basename "$f")"
	done
done
ls "$work/stages"/*.yaml >/dev/null

"$work/bin/kube-apiserver" --version >&2
"$work/bin/etcd" --version | head -1 >&2
"$work/bin/kwok" --version >&2 || true

rm -rf "$dir/bin" "$dir/stages"
mv "$work/bin" "$dir/bin"
mv "$work/stages" "$dir/stages"
echo "$want" >"$stamp"
echo "make k8s-testbin: built in $(($(date +%s) - start)) s" >&2
echo "$dir"
