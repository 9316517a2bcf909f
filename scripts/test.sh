#!/usr/bin/env bash
# The test command: installs what the tests need (only what is missing), then runs the
# format check, clippy and the whole test suite. CI runs it through .ci/run.
#
#   scripts/test.sh            # from anywhere inside the repository
#
# What it installs, and only when missing:
#   Debian: docker-registry skopeo umoci apache2-utils openssl (and python3-venv if python3
#           cannot make a virtualenv); for the test node's images (skillport_testkit::Node):
#           busybox-static (the agent image), gcc and libc6-dev (a static C `pause`),
#           musl-tools (the static `skillport` in the test node's init image)
#   rustup: the components rustfmt and clippy, the x86_64-unknown-linux-musl target
#   PyPI, into target/test-venv: skills-ref, oras, jsonschema, kubernetes-validate (pinned below)
#   crates.io: cargo-nextest (pinned below; built unoptimised, without self-update)
#   Go modules (test/k8s/, through scripts/k8s-tools.sh): Kubernetes 1.35.4 (kube-apiserver,
#           kube-controller-manager, kube-scheduler, kubelet, kubectl), etcd, crane, oras, helm,
#           containerd, runc, cosign, ocireg, built once into ~/.cache/skillport/k8s-1.35.4/bin
#           (needs Go 1.26+), in the background while the Rust side builds: on 2 cores each
#           leaves the other's idle moments (downloads, links, one long crate) to use
# Each tool is then run once; if one cannot be installed or does not run, this script fails
# and names it. Nothing is skipped silently.
#
# Environment (exported for the tests): SKILLPORT_TEST_VENV points at the virtualenv,
# SKILLPORT_K8S_BIN at the folder of Kubernetes and Go peer binaries, SKILLPORT_STATIC_BIN at the
# static (musl) skillport binary.
set -euo pipefail

SKILLS_REF_VERSION=0.1.1
ORAS_VERSION=0.2.43
JSONSCHEMA_VERSION=4.26.0
KUBERNETES_VALIDATE_VERSION=1.37.0
NEXTEST_VERSION=0.9.151

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# No incremental compilation: it only pays off on repeated edits, and it costs gigabytes of disk
# in target/ (CI builds cold, once, on a machine whose disk may be short).
export CARGO_INCREMENTAL=0
VENV=$ROOT/target/test-venv

# Each section says when it started: the cold run's phases, read from a CI log.
section() { printf '\n==> %s (at %dm%02ds)\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
fail() {
  printf '\nerror: %s\n' "$*" >&2
  exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "not root and no sudo: cannot install Debian packages"
  SUDO=(sudo -n)
fi

# ---------------------------------------------------------------------------------------------
section "Debian packages"
# binary -> package that provides it
declare -A PACKAGE_OF=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [umoci]=umoci
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [tar]=tar
  [gzip]=gzip
  [script]=bsdutils
  [setpriv]=util-linux
  [python3]=python3
  [git]=git
  [curl]=curl
  [gcc]=gcc
  [musl-gcc]=musl-tools
  [gpg]=gnupg
  [pass]=pass
  [docker-credential-pass]=golang-docker-credential-helpers
)
missing=()
for binary in "${!PACKAGE_OF[@]}"; do
  command -v "$binary" >/dev/null || missing+=("${PACKAGE_OF[$binary]}")
done
# The test node's agent image is a static busybox; Debian's `busybox` package is dynamic.
# (ldd exits 1 on a static binary: under pipefail only grep's answer may count.)
static_busybox() { [ -x /bin/busybox ] && { LC_ALL=C ldd /bin/busybox 2>&1 || true; } | grep -q 'not a dynamic executable'; }
static_busybox || missing+=(busybox-static)
# `gcc -static` needs libc6-dev's static libc.
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(gcc -print-file-name=libc.a 2>/dev/null | grep /)" ] \
  || missing+=(libc6-dev)
# A virtualenv needs python3-venv on Debian's python3 (not on a python3 that bundles venv).
if [ ! -x "$VENV/bin/python" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq || fail "apt-get update failed (needed to install: ${missing[*]})"
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed for: ${missing[*]}"
else
  echo "all present"
fi
for binary in "${!PACKAGE_OF[@]}"; do
  command -v "$binary" >/dev/null \
    || fail "$binary is still missing after installing Debian package ${PACKAGE_OF[$binary]}"
done
docker-registry --version >/dev/null 2>&1 || fail "docker-registry (package docker-registry) does not run"
skopeo --version >/dev/null 2>&1 || fail "skopeo (package skopeo) does not run"
umoci --version >/dev/null 2>&1 || fail "umoci (package umoci) does not run"
htpasswd -nbB user pass >/dev/null 2>&1 || fail "htpasswd (package apache2-utils) does not run"
openssl version >/dev/null 2>&1 || fail "openssl (package openssl) does not run"
tar --version 2>/dev/null | grep -q 'GNU tar' || fail "tar is not GNU tar (package tar)"
static_busybox || fail "/bin/busybox is not static (Debian package busybox-static)"
printf 'int main(void){return 0;}\n' | gcc -static -x c -o /dev/null - 2>/dev/null \
  || fail "gcc -static cannot link a C program (Debian packages gcc and libc6-dev)"
echo "docker-registry, skopeo, umoci, htpasswd, openssl, GNU tar, static busybox, gcc -static: ok"

# ---------------------------------------------------------------------------------------------
section "Kubernetes and Go peers (scripts/k8s-tools.sh): started in the background"
# Only the tests need them, so they build while the steps below run; the script waits for them
# before the tests and prints their log there. In a session of its own (setsid), so that the
# go builds stop with this script if a step fails or it is interrupted.
mkdir -p "$ROOT/target"
K8S_LOG=$ROOT/target/k8s-tools.log
setsid "$ROOT/scripts/k8s-tools.sh" >"$K8S_LOG" 2>&1 </dev/null &
K8S_PID=$!
stop_k8s_tools() { kill -TERM -- "-$K8S_PID" 2>/dev/null || true; }
trap stop_k8s_tools EXIT
trap 'exit 130' INT TERM
echo "log: $K8S_LOG"

# ---------------------------------------------------------------------------------------------
section "Python peers in target/test-venv"
venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$SKILLS_REF_VERSION" "$ORAS_VERSION" "$JSONSCHEMA_VERSION" "$KUBERNETES_VALIDATE_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
wanted = tuple(sys.argv[1:5])
names = ("skills-ref", "oras", "jsonschema", "kubernetes-validate")
sys.exit(0 if tuple(version(name) for name in names) == wanted else 1)
EOF
}
if venv_ok; then
  echo "skills-ref==$SKILLS_REF_VERSION oras==$ORAS_VERSION jsonschema==$JSONSCHEMA_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION already installed"
else
  echo "installing skills-ref==$SKILLS_REF_VERSION oras==$ORAS_VERSION jsonschema==$JSONSCHEMA_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  mkdir -p "$ROOT/target"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "skills-ref==$SKILLS_REF_VERSION" "oras==$ORAS_VERSION" "jsonschema==$JSONSCHEMA_VERSION" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || fail "pip could not install skills-ref, oras, jsonschema and kubernetes-validate into $VENV"
fi
"$VENV/bin/agentskills" --help >/dev/null 2>&1 \
  || fail "agentskills (PyPI skills-ref) does not run from $VENV/bin"
"$VENV/bin/python" -c 'import oras.client' 2>/dev/null \
  || fail "the oras Python package (PyPI oras) does not import in $VENV"
"$VENV/bin/python" -c 'import jsonschema' 2>/dev/null \
  || fail "the jsonschema Python package (PyPI jsonschema, for the plan schema tests) does not import in $VENV"
"$VENV/bin/kubernetes-validate" --version >/dev/null 2>&1 \
  || fail "kubernetes-validate (PyPI kubernetes-validate) does not run from $VENV/bin"
echo "agentskills, oras, jsonschema, kubernetes-validate: ok"
export SKILLPORT_TEST_VENV=$VENV

# ---------------------------------------------------------------------------------------------
section "rustup components rustfmt and clippy"
# A minimal rustup profile has neither; the format check and clippy below need both.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "installing the rustup component $component"
    rustup component add "$component" || fail "rustup component add $component failed"
  fi
done
cargo fmt --version && cargo clippy --version

# ---------------------------------------------------------------------------------------------
section "cargo-nextest"
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest $NEXTEST_VERSION"
  # Unoptimised and without self-update (an HTTP and TLS stack we never use): 2.5 minutes on 2
  # cold cores instead of 9. What nextest does itself is a small part of a run (listing the
  # tests: 1.8 s instead of 1.3).
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 cargo install --locked "cargo-nextest@$NEXTEST_VERSION" \
    --no-default-features --features default-no-update \
    || fail "cargo install --locked cargo-nextest@$NEXTEST_VERSION failed"
fi
cargo nextest --version 2>/dev/null | head -n 1

# ---------------------------------------------------------------------------------------------
section "static skillport and skillport-operator for the test node's images (x86_64-unknown-linux-musl)"
MUSL=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
  echo "installing the rustup target $MUSL"
  rustup target add "$MUSL" || fail "rustup target add $MUSL failed"
fi
# ring and zstd have C parts: musl-gcc (Debian musl-tools) compiles them for musl.
# One build for both: their shared dependencies compile once.
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --locked -p skillport -p skillport-operator \
  --target "$MUSL" --profile static-test \
  || fail "building the static skillport and skillport-operator (--target $MUSL) failed"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
SKILLPORT_STATIC_BIN=$TARGET_DIR/$MUSL/static-test/skillport
for binary in "$SKILLPORT_STATIC_BIN" "$(dirname "$SKILLPORT_STATIC_BIN")/skillport-operator"; do
  { LC_ALL=C ldd "$binary" 2>&1 || true; } | grep -q -e 'not a dynamic executable' -e 'statically linked' \
    || fail "$binary is not static"
  echo "$binary: static, $(du -h "$binary" | cut -f1)"
done
export SKILLPORT_STATIC_BIN

# ---------------------------------------------------------------------------------------------
section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# ---------------------------------------------------------------------------------------------
section "Kubernetes and Go peers (scripts/k8s-tools.sh): waiting for the build started above"
if ! wait "$K8S_PID"; then
  cat "$K8S_LOG"
  fail "scripts/k8s-tools.sh could not build the Kubernetes test binaries (its output is above, and in $K8S_LOG)"
fi
trap - EXIT
cat "$K8S_LOG"
SKILLPORT_K8S_BIN=$("$ROOT/scripts/k8s-tools.sh" --bin-dir)
export SKILLPORT_K8S_BIN

section "cargo nextest run --workspace"
cargo nextest run --workspace --locked --no-fail-fast
