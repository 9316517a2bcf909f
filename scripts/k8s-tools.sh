#!/usr/bin/env bash
# Builds the real Kubernetes parts and the Go peers the tests run, from the Go modules under
# test/k8s/ (go.mod and go.sum committed, so every machine builds the same code), into a cache
# outside the checkout:
#
#   scripts/k8s-tools.sh            # build what is missing or stale, then check every binary runs
#   scripts/k8s-tools.sh --bin-dir  # print only the folder the binaries are in (builds nothing)
#
# What it builds (each group from its own module; see test/k8s/README.md):
#   kubernetes  v1.35.4  kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#   etcd        v3.6.5   etcd
#   crane       v0.22.1  crane
#   oras        v1.3.6   oras
#   cosign      v3.1.3   cosign      (signature interop; ~3 minutes)
#   ocireg      v0.22.1  ocireg      (go-containerregistry's registry with the referrers API, TLS, auth)
#   helm        v3.22.0  helm
#   containerd  v2.2.9   containerd containerd-shim-runc-v2 ctr   (CGO_ENABLED=0)
#   runc        v1.3.7   runc                                     (CGO_ENABLED=1, -tags seccomp;
#                                                                  Debian libseccomp-dev pkg-config gcc)
#
# The folder is keyed by the Kubernetes version; inside it, each group keeps a stamp holding a hash
# of its module files and build flags, so changing a pin rebuilds that group and nothing else. A
# group whose binaries are all there, carry its stamp and answer their version check is left alone.
# About 12 minutes cold on 2 cores (Kubernetes ~4.5, cosign ~3, containerd ~1.5, helm ~1, the rest seconds) and
# ~4 GB of Go build cache while it builds (removed afterwards); a second run takes a second or two.
set -euo pipefail

K8S_VERSION=1.35.4
ETCD_VERSION=3.6.5
CRANE_VERSION=0.22.1
ORAS_VERSION=1.3.6
COSIGN_VERSION=3.1.3
HELM_VERSION=3.22.0
CONTAINERD_VERSION=2.2.9
RUNC_VERSION=1.3.7

BIN_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/skillport/k8s-$K8S_VERSION/bin

case "${1:-}" in
  --bin-dir)
    echo "$BIN_DIR"
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: $0 [--bin-dir]" >&2
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODULES=$PWD/test/k8s

fail() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}
now() { date +%s; }
duration() { # seconds -> "4m19s"
  local s=$1
  if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

command -v go >/dev/null || fail "go is not installed (Go 1.26+ is needed to build the Kubernetes test binaries; cosign's module asks for 1.26)"
mkdir -p "$BIN_DIR/.stamps"

# One build at a time per machine: two test runs starting together must not race on the folder.
exec 9>"$BIN_DIR/.lock"
flock 9

# Reproducible builds: module versions come only from the committed go.mod/go.sum.
export GOFLAGS="-mod=readonly -buildvcs=false"
# A build cache of our own (~4 GB after Kubernetes), shared by the groups of one run and removed
# once every group is built: the binaries are what is kept, and disk is short on CI machines.
# SKILLPORT_KEEP_GOCACHE=1 keeps it (for changing pins often).
GO_BUILD_CACHE=$BIN_DIR/../go-build
export GOCACHE=$GO_BUILD_CACHE
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
CONTAINERD_LDFLAGS="-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION"
RUNC_LDFLAGS="-s -w -X main.version=$RUNC_VERSION"
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
CRANE_LDFLAGS="-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=v$CRANE_VERSION"
ORAS_LDFLAGS="-s -w"
COSIGN_LDFLAGS="-s -w -X sigs.k8s.io/release-utils/version.gitVersion=v$COSIGN_VERSION"

# group -> module folder (under test/k8s), binaries, ldflags, extra build settings
declare -A DIR=(
  [kubernetes]=. [etcd]=etcd [crane]=crane [oras]=oras [cosign]=cosign [ocireg]=ocireg [helm]=helm [containerd]=containerd [runc]=runc
)
declare -A BINARIES=(
  [kubernetes]="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"
  [etcd]=etcd [crane]=crane [oras]=oras [cosign]=cosign [ocireg]=ocireg [helm]=helm
  [containerd]="containerd containerd-shim-runc-v2 ctr" [runc]=runc
)
declare -A PACKAGES=(
  [kubernetes]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl"
  [etcd]=.
  [crane]=github.com/google/go-containerregistry/cmd/crane
  [oras]=oras.land/oras/cmd/oras
  [cosign]=github.com/sigstore/cosign/v3/cmd/cosign
  [ocireg]=.
  [helm]=helm.sh/helm/v3/cmd/helm
  [containerd]="github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr"
  [runc]=github.com/opencontainers/runc
)
declare -A LDFLAGS=(
  [kubernetes]=$K8S_LDFLAGS [etcd]="-s -w" [crane]=$CRANE_LDFLAGS [oras]=$ORAS_LDFLAGS
  [cosign]=$COSIGN_LDFLAGS [ocireg]="-s -w"
  [helm]=$HELM_LDFLAGS [containerd]=$CONTAINERD_LDFLAGS [runc]=$RUNC_LDFLAGS
)
declare -A CGO=([containerd]=0 [runc]=1)
declare -A TAGS=([runc]=seccomp)
GROUPS_IN_ORDER=(kubernetes etcd crane oras cosign ocireg helm containerd runc)

# binary -> command whose output must contain the pinned version (empty: it must only exit 0)
declare -A VERSION_CHECK=(
  [kube-apiserver]="--version|v$K8S_VERSION"
  [kube-controller-manager]="--version|v$K8S_VERSION"
  [kube-scheduler]="--version|v$K8S_VERSION"
  [kubelet]="--version|v$K8S_VERSION"
  [kubectl]="version --client|v$K8S_VERSION"
  [etcd]="--version|$ETCD_VERSION"
  [crane]="version|v$CRANE_VERSION"
  [oras]="version|$ORAS_VERSION"
  [cosign]="version|v$COSIGN_VERSION"
  [ocireg]="--help|"
  [helm]="version --short|v$HELM_VERSION"
  [containerd]="--version|v$CONTAINERD_VERSION"
  [containerd-shim-runc-v2]="-v|v$CONTAINERD_VERSION"
  [ctr]="--version|v$CONTAINERD_VERSION"
  [runc]="--version|$RUNC_VERSION"
)

stamp_of() { # group -> hash of everything that decides its binaries
  local group=$1 dir=$MODULES/${DIR[$1]}
  {
    echo "$group ${BINARIES[$group]} ${PACKAGES[$group]} ${LDFLAGS[$group]} cgo=${CGO[$group]:-} tags=${TAGS[$group]:-}"
    find "$dir" -maxdepth 1 -type f \( -name 'go.mod' -o -name 'go.sum' -o -name '*.go' \) -print0 \
      | sort -z | xargs -0 sha256sum | sed "s#  $dir/#  #"
  } | sha256sum | cut -c1-16
}

runs() { # binary -> 0 when it runs and reports the pinned version
  local binary=$1 check=${VERSION_CHECK[$1]} args expected output
  args=${check%%|*}
  expected=${check#*|}
  [ -x "$BIN_DIR/$binary" ] || return 1
  # shellcheck disable=SC2086 # args is a fixed word list
  output=$(timeout 20 "$BIN_DIR/$binary" $args 2>&1) || return 1
  [ -z "$expected" ] || grep -qF -- "$expected" <<<"$output"
}

up_to_date() { # group -> 0 when nothing needs building
  local group=$1 binary
  [ "$(cat "$BIN_DIR/.stamps/$group" 2>/dev/null)" = "$(stamp_of "$group")" ] || return 1
  for binary in ${BINARIES[$group]}; do runs "$binary" || return 1; done
}

ensure_cgo_deps() { # runc links libseccomp through cgo
  local missing=()
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists libseccomp 2>/dev/null || missing+=(libseccomp-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || fail "runc needs Debian packages ${missing[*]}: not root and no sudo"
    sudo=(sudo -n)
  fi
  echo "installing Debian packages for runc: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq || fail "apt-get update failed (needed to install: ${missing[*]})"
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}"
  pkg-config --exists libseccomp || fail "libseccomp still not found by pkg-config after installing libseccomp-dev"
}

build() { # group
  local group=$1 started out binary
  started=$(now)
  out=$BIN_DIR/.build-$group
  rm -rf "$out"
  mkdir -p "$out"
  [ "$group" = runc ] && ensure_cgo_deps
  echo "building $group: ${BINARIES[$group]}"
  (
    cd "$MODULES/${DIR[$group]}"
    export CGO_ENABLED=${CGO[$group]:-0}
    # shellcheck disable=SC2086 # PACKAGES is a word list
    if [ "$group" = etcd ]; then
      go build -trimpath -ldflags "${LDFLAGS[$group]}" -o "$out/etcd" .
    else
      go build -trimpath ${TAGS[$group]:+-tags ${TAGS[$group]}} -ldflags "${LDFLAGS[$group]}" \
        -o "$out/" ${PACKAGES[$group]}
    fi
  ) || fail "building $group failed (module test/k8s/${DIR[$group]}); see the go output above"
  for binary in ${BINARIES[$group]}; do
    [ -x "$out/$binary" ] || fail "building $group made no $binary"
    mv -f "$out/$binary" "$BIN_DIR/$binary"
  done
  rmdir "$out"
  for binary in ${BINARIES[$group]}; do
    runs "$binary" || fail "$BIN_DIR/$binary was built but does not run or does not report its pinned version"
  done
  stamp_of "$group" >"$BIN_DIR/.stamps/$group"
  echo "built $group in $(duration $(($(now) - started)))"
}

started=$(now)
built=()
for group in "${GROUPS_IN_ORDER[@]}"; do
  if up_to_date "$group"; then continue; fi
  build "$group"
  built+=("$group")
done
if [ ${#built[@]} -eq 0 ]; then
  echo "all present in $BIN_DIR (Kubernetes v$K8S_VERSION, etcd $ETCD_VERSION, crane $CRANE_VERSION, oras $ORAS_VERSION, cosign $COSIGN_VERSION, helm $HELM_VERSION, containerd $CONTAINERD_VERSION, runc $RUNC_VERSION)"
else
  echo "built ${built[*]} into $BIN_DIR in $(duration $(($(now) - started)))"
fi
if [ -z "${SKILLPORT_KEEP_GOCACHE:-}" ] && [ -d "$GO_BUILD_CACHE" ]; then
  go clean -cache && rm -rf "$GO_BUILD_CACHE"
fi
