#!/usr/bin/env bash
# Static checks of the deployment artefacts (no cluster, no Docker engine needed):
#
#   1. hadolint Dockerfile
#   2. helm lint --strict of charts/kafka-webhook-sidecar, with the default values and
#      with each charts/kafka-webhook-sidecar/ci/*.yaml
#   3. helm template | kubeconform -strict for the same values files, against the
#      Kubernetes JSON schemas of each version in KWS_KUBE_VERSIONS (the Prometheus
#      Operator kinds ServiceMonitor and PrometheusRule are skipped: no schema for
#      them here)
#   4. the sidecar config that each rendering puts in its ConfigMap passes the binary's
#      --check-config, every ${VAR} it needs is set in the sidecar container's env, and
#      the pod spec agrees with it (grace period, admin port, probes, the TLS and token
#      files of delivery.tls / delivery.auth mounted; openssl makes stand-ins for them)
#   5. the chart refuses a drain timeout that does not fit in the grace period
#
# Tools come from scripts/setup.sh (into ~/.cache/kafka-webhook-sidecar/bin).
# Environment:
#   KWS_KUBE_VERSIONS  Kubernetes versions to validate against (default "1.29.0 1.34.0")
#   KWS_BIN            sidecar binary for --check-config (default: cargo build, debug)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE_ROOT=${KWS_CACHE_DIR:-${HOME:-/root}/.cache/kafka-webhook-sidecar}
export PATH="$CACHE_ROOT/bin:$PATH"
CHART=charts/kafka-webhook-sidecar
SCHEMA_DIR="$CACHE_ROOT/kubernetes-json-schema"
read -r -a KUBE_VERSIONS <<<"${KWS_KUBE_VERSIONS:-1.29.0 1.34.0}"
RELEASE=check
# Rendering for anything but the per-version schema check uses the newest version.
KV_DEFAULT=${KUBE_VERSIONS[${#KUBE_VERSIONS[@]} - 1]}

FAILED=()
SKIPPED=()
PASSED=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# check NAME CMD...: runs CMD and records the result; its output is shown only when it fails.
# check_verbose NAME CMD...: the same, but the output (a tool's summary) is always shown.
check() { run_check quiet "$@"; }
check_verbose() { run_check verbose "$@"; }
run_check() {
    local mode=$1 name=$2 rc=0
    shift 2
    "$@" >"$WORK/out" 2>&1 || rc=$?
    if ((rc == 0)); then
        printf 'ok    %s\n' "$name"
        PASSED=$((PASSED + 1))
    else
        printf 'FAIL  %s (exit %d)\n' "$name" "$rc"
        FAILED+=("$name")
    fi
    if ((rc != 0)) || [[ $mode == verbose ]]; then
        sed 's/^/      /' "$WORK/out"
    fi
}
skip() {
    printf 'SKIP  %s\n' "$*"
    SKIPPED+=("$*")
}
have() { command -v "$1" >/dev/null 2>&1; }

# The values files: "" is the chart's defaults (plus the one required value, so that the
# defaults themselves are rendered), then every ci/*.yaml.
VALUES=("")
for f in "$CHART"/ci/*.yaml; do VALUES+=("$f"); done
values_args() { # values_args FILE: helm flags for one entry of VALUES
    if [[ -z "$1" ]]; then
        echo "--set app.image.repository=registry.example.com/app"
    else
        echo "-f $1"
    fi
}
values_name() { if [[ -z "$1" ]]; then echo "defaults"; else basename "$1"; fi; }

# ---- 1. Dockerfile ----------------------------------------------------------------------
if have hadolint; then
    check "hadolint Dockerfile ($(hadolint --version | awk '{print $NF}'))" hadolint Dockerfile
else
    FAILED+=("hadolint missing")
    echo "FAIL  hadolint not found (run scripts/setup.sh)"
fi

if ! have helm; then
    FAILED+=("helm missing")
    echo "FAIL  helm not found (run scripts/setup.sh); chart checks not run"
else
    # ---- 2. helm lint -------------------------------------------------------------------
    for v in "${VALUES[@]}"; do
        # shellcheck disable=SC2046 # values_args is word-split on purpose
        check "helm lint --strict ($(values_name "$v"))" helm lint --strict --kube-version "$KV_DEFAULT" "$CHART" $(values_args "$v")
    done

    # ---- 3. rendered manifests against the Kubernetes schemas ---------------------------
    kubeconform_ok=1
    if ! have kubeconform; then
        kubeconform_ok=""
        FAILED+=("kubeconform missing")
        echo "FAIL  kubeconform not found (run scripts/setup.sh)"
    fi
    for kv in "${KUBE_VERSIONS[@]}"; do
        if [[ ! -f "$SCHEMA_DIR/v$kv-local-strict/_definitions.json" ]]; then
            kubeconform_ok=""
            FAILED+=("schemas for Kubernetes $kv missing")
            echo "FAIL  no JSON schemas for Kubernetes $kv in $SCHEMA_DIR (run scripts/setup.sh)"
        fi
    done
    # Renders FILE for Kubernetes KV and validates it.
    render_and_validate() {
        local v=$1 kv=$2 out="$WORK/rendered.yaml"
        # shellcheck disable=SC2046
        helm template "$RELEASE" "$CHART" --namespace demo --kube-version "$kv" $(values_args "$v") >"$out" || return 1
        kubeconform -strict -summary -kubernetes-version "$kv" \
            -schema-location "$SCHEMA_DIR/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            -skip ServiceMonitor,PrometheusRule "$out"
    }
    if [[ -n "$kubeconform_ok" ]]; then
        for kv in "${KUBE_VERSIONS[@]}"; do
            for v in "${VALUES[@]}"; do
                check_verbose "kubeconform -strict, Kubernetes $kv ($(values_name "$v"))" render_and_validate "$v" "$kv"
            done
        done
    fi
    # The schemas really bite: an unknown field in the pod spec is an error.
    rejects_unknown_field() {
        local out="$WORK/bad.yaml"
        helm template "$RELEASE" "$CHART" --kube-version "$KV_DEFAULT" --set app.image.repository=x \
            --set sidecar.livenessProbe.notAProbeField=1 >"$out" || return 1
        if kubeconform -strict -kubernetes-version "$KV_DEFAULT" \
            -schema-location "$SCHEMA_DIR/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            "$out" >"$WORK/bad.out" 2>&1; then
            echo "kubeconform accepted livenessProbe.notAProbeField"
            return 1
        fi
        grep -q notAProbeField "$WORK/bad.out"
    }
    if [[ -n "$kubeconform_ok" ]]; then
        check "kubeconform rejects an unknown field (the schemas are in effect)" rejects_unknown_field
    fi
    if grep -qs 'serviceMonitor:\|prometheusRule:' "$CHART"/ci/*.yaml; then
        skip "ServiceMonitor and PrometheusRule (monitoring.coreos.com CRDs): no schema available offline; rendered, YAML-checked below, not schema-validated, their alert rules are checked by promtool below"
    fi

    # ---- 4. the rendered sidecar config -------------------------------------------------
    BIN=${KWS_BIN:-}
    if [[ -z "$BIN" ]]; then
        locked=()
        [[ ! -f Cargo.lock ]] || locked=(--locked)
        echo "      (building the sidecar for --check-config: cargo build --bin kafka-webhook-sidecar)"
        if cargo build -q "${locked[@]}" --bin kafka-webhook-sidecar >"$WORK/build.log" 2>&1; then
            BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/kafka-webhook-sidecar"
        else
            tail -n 30 "$WORK/build.log"
        fi
    fi
    PYTHON=python3
    python3 -c 'import yaml' 2>/dev/null || PYTHON=/usr/bin/python3
    check_config() {
        local v=$1 out="$WORK/config-check.yaml"
        # shellcheck disable=SC2046
        helm template "$RELEASE" "$CHART" --namespace demo --kube-version "$KV_DEFAULT" $(values_args "$v") >"$out" || return 1
        "$PYTHON" - "$out" "$BIN" <<'PY'
"""Extracts the sidecar config from the rendered chart, checks it against the pod spec,
and runs the binary's --check-config with the env the sidecar container would have."""
import os, re, subprocess, sys, tempfile
import yaml

manifest, binary = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(manifest)) if d]
kinds = [d["kind"] for d in docs]
configmaps = [d for d in docs if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {})]
workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
problems = []
if len(configmaps) != 1 or len(workloads) != 1:
    sys.exit(f"expected one sidecar ConfigMap and one workload, got {kinds}")
text = configmaps[0]["data"]["config.yaml"]
config = yaml.safe_load(text)
pod = workloads[0]["spec"]["template"]["spec"]
candidates = pod.get("initContainers", []) + pod["containers"]
sidecars = [c for c in candidates if any(
    m["mountPath"] == "/etc/kafka-webhook-sidecar" for m in c.get("volumeMounts", []))]
if len(sidecars) != 1:
    sys.exit("expected exactly one container mounting /etc/kafka-webhook-sidecar")
sidecar = sidecars[0]
native = sidecar in pod.get("initContainers", [])
if native and sidecar.get("restartPolicy") != "Always":
    problems.append("a sidecar in initContainers needs restartPolicy: Always")
volume = next(v for v in pod["volumes"]
              if v["name"] == next(m["name"] for m in sidecar["volumeMounts"]
                                   if m["mountPath"] == "/etc/kafka-webhook-sidecar"))
if volume.get("configMap", {}).get("name") != configmaps[0]["metadata"]["name"]:
    problems.append("the config volume does not mount the sidecar ConfigMap")

# The pod and the config agree.
grace = pod.get("terminationGracePeriodSeconds", 30)
if config.get("shutdown", {}).get("termination_grace_period") != f"{grace}s":
    problems.append(f"shutdown.termination_grace_period {config.get('shutdown')} != pod's {grace}s")
admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
ports = {p["name"]: p["containerPort"] for p in sidecar.get("ports", [])}
if ports.get("admin") != admin_port:
    problems.append(f"container port 'admin' {ports.get('admin')} != admin.listen port {admin_port}")
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = sidecar.get(probe, {}).get("httpGet", {})
    if get.get("path") != path or get.get("port") not in ("admin", admin_port):
        problems.append(f"{probe} should GET {path} on the admin port, is {get}")
sc = sidecar.get("securityContext", {})
for key, want in (("readOnlyRootFilesystem", True), ("allowPrivilegeEscalation", False)):
    if sc.get(key) is not want:
        problems.append(f"sidecar securityContext.{key} should be {want}")
if "ALL" not in sc.get("capabilities", {}).get("drop", []):
    problems.append("sidecar securityContext should drop ALL capabilities")
if not (sc.get("runAsNonRoot") or pod.get("securityContext", {}).get("runAsNonRoot")):
    problems.append("runAsNonRoot is not set")

# Every ${VAR} without a default must be in the container's env.
env_names = {e["name"] for e in sidecar.get("env", [])}
lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
needed = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", "\n".join(lines).replace("$$", "")))
missing = needed - env_names
if missing:
    problems.append(f"config uses ${{VAR}} not set in the sidecar's env: {sorted(missing)}")
for e in sidecar.get("env", []):
    ref = e.get("valueFrom", {}).get("secretKeyRef")
    if ref and e["name"] not in needed:
        print(f"note: secret env {e['name']} is not used by the config")

# Files the config reads (delivery.tls, delivery.auth) must be mounted into the sidecar.
# --check-config reads them, so it gets stand-ins: a CA and a client certificate made with
# openssl, a placeholder token.
delivery = config.get("delivery") or {}
files = {}
for section, key in (("tls", "ca_file"), ("tls", "cert_file"), ("tls", "key_file"),
                     ("auth", "bearer_token_file")):
    path = (delivery.get(section) or {}).get(key)
    if path:
        files[key] = path
mounts = [m["mountPath"].rstrip("/") + "/" for m in sidecar.get("volumeMounts", [])]
for key, path in files.items():
    if not any(path.startswith(mount) for mount in mounts):
        problems.append(f"delivery {key} {path} is not under a volumeMount of the sidecar")
# A delivery.unix_socket lives in a volume the sidecar and another container both mount.
socket = delivery.get("unix_socket")
if socket:
    def volume_of(container):
        under = [m for m in container.get("volumeMounts", [])
                 if socket.startswith(m["mountPath"].rstrip("/") + "/")]
        return under[0]["name"] if under else None
    shared = volume_of(sidecar)
    others = [c["name"] for c in candidates if c is not sidecar and volume_of(c) == shared]
    if shared is None:
        problems.append(f"delivery.unix_socket {socket} is not under a volumeMount of the sidecar")
    elif not others:
        problems.append(f"delivery.unix_socket {socket}: no other container mounts volume {shared}")
stand_ins = tempfile.TemporaryDirectory()
if files:
    d = stand_ins.name
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt",
         "-subj", "/CN=check-deploy CA", "-days", "1"],
        ["openssl", "req", *ec, "-keyout", f"{d}/tls.key", "-out", f"{d}/tls.csr",
         "-subj", "/CN=check-deploy client"],
        # -extfile: without extensions openssl issues an X.509 v1 certificate, which
        # webpki (and so the sidecar) refuses.
        ["openssl", "x509", "-req", "-in", f"{d}/tls.csr", "-CA", f"{d}/ca.crt",
         "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/tls.crt", "-days", "1",
         "-extfile", f"{d}/client.ext"],
    ]
    with open(f"{d}/client.ext", "w") as ext:
        ext.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for step in steps:
        made = subprocess.run(step, capture_output=True, text=True)
        if made.returncode != 0:
            problems.append(f"openssl could not make stand-in certificates: {made.stderr.strip()}")
            break
    with open(f"{d}/token", "w") as token:
        token.write("placeholder-token\n")
    stand_in = {"ca_file": "ca.crt", "cert_file": "tls.crt", "key_file": "tls.key",
                "bearer_token_file": "token"}
    for key, path in files.items():
        text = text.replace(path, f"{d}/{stand_in[key]}")

# --check-config with placeholder values for the container's env.
if not binary or not os.access(binary, os.X_OK):
    problems.append(f"no sidecar binary for --check-config ({binary or 'build failed'})")
else:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    for name in env_names:
        env[name] = "placeholder-" + name.lower().replace("_", "-")
    env["POD_NAME"] = workloads[0]["metadata"]["name"] + "-0"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        run = subprocess.run([binary, "--config", f.name, "--check-config"], env=env,
                             capture_output=True, text=True)
        print((run.stdout + run.stderr).strip().replace(f.name, "<ConfigMap config.yaml>"))
        if run.returncode != 0:
            problems.append(f"--check-config exited {run.returncode}")
for p in problems:
    print("problem:", p)
sys.exit(1 if problems else 0)
PY
    }
    for v in "${VALUES[@]}"; do
        check_verbose "sidecar config and pod spec agree, --check-config passes ($(values_name "$v"))" check_config "$v"
    done
    # Optional kinds render as parseable YAML with the expected objects.
    monitoring_objects() {
        helm template "$RELEASE" "$CHART" --kube-version "$KV_DEFAULT" -f "$CHART/ci/monitoring-values.yaml" >"$WORK/mon.yaml" || return 1
        "$PYTHON" - "$WORK/mon.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
print("kinds:", ", ".join(kinds))
rule = next(d for d in docs if d["kind"] == "PrometheusRule")
alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
print("alerts:", ", ".join(alerts))
for needed in ("ServiceMonitor", "PrometheusRule", "Service"):
    assert needed in kinds, needed
for metric in ("kws_consumer_lag_records", "kws_oldest_unacked_record_age_seconds",
               'outcome="dead_lettered"', "status_ready"):
    assert any(metric in r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]), metric
PY
    }
    check_verbose "monitoring objects render (ServiceMonitor, PrometheusRule with 4 alerts)" monitoring_objects

    # The PrometheusRule's groups are a Prometheus rules file: promtool parses every PromQL
    # expression and template in it.
    alert_rules_valid() {
        "$PYTHON" - "$WORK/mon.yaml" "$WORK/rules.yaml" <<'PY' || return 1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
rule = next(d for d in docs if d["kind"] == "PrometheusRule")
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w"))
PY
        promtool check rules "$WORK/rules.yaml"
    }
    if command -v promtool >/dev/null 2>&1; then
        check_verbose "promtool check rules (PrometheusRule alerts)" alert_rules_valid
    else
        skip "promtool check rules: promtool missing (scripts/setup.sh installs Debian's prometheus package)"
    fi

    # ---- 5. the chart rejects inconsistent shutdown timing ------------------------------
    rejects_bad_timing() {
        if helm template "$RELEASE" "$CHART" --kube-version "$KV_DEFAULT" --set app.image.repository=x \
            --set terminationGracePeriodSeconds=20 --set sidecar.drainTimeoutSeconds=20 >/dev/null 2>"$WORK/err"; then
            echo "rendered a drain timeout equal to the grace period"
            return 1
        fi
        grep -q 'must be less than terminationGracePeriodSeconds' "$WORK/err"
    }
    check "chart rejects drainTimeoutSeconds >= terminationGracePeriodSeconds" rejects_bad_timing
fi

echo
echo "deploy checks: $PASSED passed, ${#FAILED[@]} failed, ${#SKIPPED[@]} skipped"
for s in "${SKIPPED[@]}"; do echo "  skipped: $s"; done
for f in "${FAILED[@]}"; do echo "  failed: $f"; done
((${#FAILED[@]} == 0))
