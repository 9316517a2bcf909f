#!/usr/bin/env bash
# Builds the two images a cluster install runs — the operator and the init image (the static
# `skillport`) — from the static binaries, without Docker; pushes them to a registry you name;
# prints their digests; and writes a kustomize overlay that installs deploy/ with them, pinned
# by digest, and Helm values that do the same for charts/skillport:
#
#   scripts/images.sh registry.example.com/skillport              # written to ./skillport-install
#   kubectl apply --server-side -k ./skillport-install
#   # or: helm install skillport charts/skillport -n skillport-system --create-namespace \
#   #       -f ./skillport-install/values.yaml
#
#   scripts/images.sh REGISTRY/PATH [OUT]
#
# Each image is one layer holding /usr/local/bin/<binary> (owner 0, mode 0755, mtime 0, sorted:
# the same binary gives the same digest), on an empty OCI base, entrypoint the binary, user
# 65532. crane (go-containerregistry, built by scripts/k8s-tools.sh or on PATH) pushes them with
# your Docker credentials (`docker login`, `skillport login` or `crane auth login` first);
# SSL_CERT_FILE adds a private CA; CRANE_FLAGS passes more flags (e.g. --insecure for a
# plain-HTTP test registry). SKILLPORT_IMAGE_BINARIES=DIR uses DIR/skillport and
# DIR/skillport-operator instead of building them (cargo build --release for
# x86_64-unknown-linux-musl).
set -euo pipefail

fail() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || {
  echo "usage: $0 REGISTRY/PATH [OUT]   (e.g. $0 registry.example.com/skillport)" >&2
  exit 2
}
target=${1%/}
out=${2:-skillport-install}
case "$target" in
  */*) ;;
  *) fail "$target names no repository path; write REGISTRY/PATH, e.g. $target/skillport" ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -1)
[ -n "$version" ] || fail "no version in $repo/Cargo.toml"

crane=$(command -v crane || true)
if [ -z "$crane" ]; then
  crane="$("$repo/scripts/k8s-tools.sh" --bin-dir)/crane"
  [ -x "$crane" ] || fail "crane is not on PATH and not built; run scripts/k8s-tools.sh (it builds crane)"
fi

if [ -n "${SKILLPORT_IMAGE_BINARIES:-}" ]; then
  binaries=$SKILLPORT_IMAGE_BINARIES
else
  rustup target add x86_64-unknown-linux-musl >/dev/null
  cargo build --release --locked --target x86_64-unknown-linux-musl \
    --manifest-path "$repo/Cargo.toml" -p skillport -p skillport-operator
  binaries=$repo/target/x86_64-unknown-linux-musl/release
fi

# The operator's Deployment names the init image in an argument, which kustomize's `images:`
# does not rewrite: a JSON patch does, at the argument's index.
init_arg=$(awk '/^ *args:/ {inside = 1; n = 0; next}
  inside && /^ *- / {if ($0 ~ /--init-image=/) {print n; exit} n++; next}
  inside {inside = 0}' "$repo/deploy/operator.yaml")
[ -n "$init_arg" ] || fail "deploy/operator.yaml has no --init-image argument"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A digest
for name in skillport skillport-operator; do
  [ -x "$binaries/$name" ] || fail "$binaries/$name is missing or not executable"
  mkdir -p "$work/$name/usr/local/bin"
  install -m 0755 "$binaries/$name" "$work/$name/usr/local/bin/$name"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu \
    -C "$work/$name" -cf "$work/$name.tar" usr
  ref="$target/$name:$version"
  # shellcheck disable=SC2086 # CRANE_FLAGS is a word list
  "$crane" append ${CRANE_FLAGS:-} --oci-empty-base -f "$work/$name.tar" -t "$ref" >/dev/null \
    || fail "pushing $ref failed (crane's message above); log in to the registry first"
  # shellcheck disable=SC2086
  pinned=$("$crane" mutate ${CRANE_FLAGS:-} --set-platform linux/amd64 \
    --entrypoint "/usr/local/bin/$name" \
    --user 65532:65532 -t "$ref" "$ref") || fail "setting the entrypoint of $ref failed"
  digest[$name]=${pinned##*@}
  echo "$target/$name@${digest[$name]}"
done

mkdir -p "$out"
deploy=$(realpath --relative-to="$out" "$repo/deploy")
cat >"$out/kustomization.yaml" <<EOF
# Written by scripts/images.sh: deploy/ with the images it built and pushed, pinned by digest.
# Install: kubectl apply --server-side -k $out
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $deploy
images:
  - name: ghcr.io/skillport/skillport-operator
    newName: $target/skillport-operator
    digest: ${digest[skillport-operator]}
patches:
  - target: {kind: Deployment, name: skillport-operator}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/args/$init_arg
        value: --init-image=$target/skillport@${digest[skillport]}
EOF
cat >"$out/values.yaml" <<EOF
# Helm values pinning both images by digest (scripts/images.sh).
image:
  repository: $target/skillport-operator
  digest: ${digest[skillport-operator]}
initImage: $target/skillport@${digest[skillport]}
EOF
echo "wrote $out/kustomization.yaml and $out/values.yaml; install with: kubectl apply --server-side -k $out" >&2
echo "  or: helm install skillport $repo/charts/skillport -n skillport-system --create-namespace -f $out/values.yaml" >&2
