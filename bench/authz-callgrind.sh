#!/usr/bin/env bash
# What enforcing a realistic policy costs the proxy, counted in instructions
# (deterministic, unlike time): the server-side proxy runs under
# valgrind --tool=callgrind; a meshed client sends the same N requests
# (GET /authors.json as books, through its own proxy, mTLS between them)
# twice: once with the default allow-all policy (no policy service), once
# with the seed's booksapp policy from the controller (Server, HTTPRoute,
# AuthorizationPolicy, MeshTLSAuthentication). Counters are zeroed after
# a warm-up and dumped after the N requests, so start-up is not counted.
#
#   usage: bench/authz-callgrind.sh [N]      (default N=2000; no root needed)
#
# Traffic stays on 127.0.5.0/24; every process started is stopped on exit.
set -euo pipefail
N=${1:-2000}
WARMUP=200
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
seeds="$repo/fixtures/seeds"
for tool in valgrind callgrind_control curl; do
  command -v $tool >/dev/null || { echo "authz-callgrind: needs $tool (apt-get install -y valgrind curl)" >&2; exit 2; }
done
[[ -f $seeds/seed003-booksapp-authors.yaml ]] || { echo "authz-callgrind: seed fixtures expected in $seeds" >&2; exit 2; }

echo "authz-callgrind: building release binaries" >&2
cargo build --release --locked -p ztmesh -p ztmesh-proxy --manifest-path "$repo/Cargo.toml" >&2
Z=$repo/target/release/ztmesh
P=$repo/target/release/ztmesh-proxy
work=$(mktemp -d /tmp/ztmesh-authz-callgrind.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

NS=booksapp
SRV_IP=127.0.5.2; CLI_IP=127.0.5.11; APP_PORT=18200
id() { echo "$1.$NS.serviceaccount.identity.linkerd.cluster.local"; }

"$Z" install --dir "$work/identity" >/dev/null
mkdir "$work/manifests"
cp "$seeds/seed003-booksapp-authors.yaml" "$work/manifests/"
cat > "$work/manifests/workloads.yaml" <<EOF
apiVersion: workload.linkerd.io/v1beta1
kind: ExternalWorkload
metadata: {name: authors, namespace: $NS, labels: {app: authors}, annotations: {config.ztmesh.io/proxy-mode: explicit}}
spec:
  meshTLS: {identity: $(id authors), serverName: $(id authors)}
  workloadIPs: [{ip: $SRV_IP}]
  ports: [{port: $APP_PORT, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: authors, namespace: $NS}
spec: {selector: {app: authors}, ports: [{port: 7001, targetPort: $APP_PORT}]}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: authors, namespace: $NS}
spec: {externalWorkloadSelector: {matchLabels: {app: authors}}, port: $APP_PORT, proxyProtocol: HTTP/1}
EOF
"$Z" controller --identity-dir "$work/identity" --manifests "$work/manifests" \
  --identity-addr 127.0.5.1:8080 --destination-addr 127.0.5.1:8086 --policy-addr 127.0.5.1:8090 \
  >"$work/controller.log" 2>&1 &
pids+=($!)
"$Z" app serve --name authors --http "$SRV_IP:$APP_PORT" >"$work/app.log" 2>&1 &
pids+=($!)
for sa in authors books; do "$Z" token create --dir "$work/identity" --namespace $NS --service-account $sa >"$work/$sa.token"; done
for _ in $(seq 100); do grep -q "policy service listening" "$work/controller.log" && break; sleep 0.1; done

start_proxy() { # name sa app-addr extra-env... ; runs in the background, logs to $work/name.log
  local name=$1 sa=$2 app=$3; shift 3
  env LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS="$(cat "$work/identity/ca.crt")" \
    LINKERD2_PROXY_IDENTITY_TOKEN_FILE="$work/$sa.token" \
    LINKERD2_PROXY_IDENTITY_SVC_ADDR=127.0.5.1:8080 \
    LINKERD2_PROXY_IDENTITY_SVC_NAME=linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local \
    LINKERD2_PROXY_IDENTITY_LOCAL_NAME="$(id $sa)" \
    LINKERD2_PROXY_DESTINATION_SVC_ADDR=127.0.5.1:8086 \
    LINKERD2_PROXY_DESTINATION_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local \
    LINKERD2_PROXY_CORES=1 LINKERD2_PROXY_LOG=warn \
    ZTMESH_PROXY_MODE=explicit ZTMESH_PROXY_APP_ADDR="$app" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
start_proxy client books "$CLI_IP:9" "$P"
url="http://authors.$NS.svc.cluster.local:7001/authors.json"

measure() { # label extra-env...
  local label=$1; shift
  local out="$work/callgrind.$label"
  start_proxy "server-$label" authors "$SRV_IP:$APP_PORT" "$@" \
    valgrind --tool=callgrind --callgrind-out-file="$out.%p" "$P"
  local vg=${pids[-1]}
  local ok=0
  for _ in $(seq 600); do
    if curl -s -o /dev/null -w '%{http_code}' -x "http://$CLI_IP:4140" "$url" 2>/dev/null | grep -q 200; then ok=1; break; fi
    sleep 0.1
  done
  [[ $ok == 1 ]] || { echo "authz-callgrind: $label: the proxy never served" >&2; cat "$work/server-$label.log" >&2; exit 1; }
  curl -s -o /dev/null -x "http://$CLI_IP:4140" "$url?[1-$WARMUP]"
  callgrind_control -z "$vg" >/dev/null 2>&1
  local codes
  codes=$(curl -s -o /dev/null -w '%{http_code}\n' -x "http://$CLI_IP:4140" "$url?[1-$N]" | sort | uniq -c | tr -s ' ')
  callgrind_control -d "$vg" >/dev/null 2>&1
  sleep 1
  local ir
  ir=$(cat "$out".* | awk '/^(summary|totals):/ {print $2}' | sort -n | tail -1)
  kill "$vg"; wait "$vg" 2>/dev/null || true
  echo "$label $ir $codes"
}

echo "authz-callgrind: $N requests per policy (after $WARMUP to warm up)" >&2
allow=$(measure allow-all LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=all-unauthenticated)
seed=$(measure seed-policy \
  LINKERD2_PROXY_POLICY_SVC_ADDR=127.0.5.1:8090 \
  LINKERD2_PROXY_POLICY_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local \
  LINKERD2_PROXY_POLICY_WORKLOAD="{\"ns\":\"$NS\",\"external_workload\":\"authors\"}" \
  LINKERD2_PROXY_INBOUND_PORTS=$APP_PORT)
read -r _ allow_ir allow_codes <<<"$allow"
read -r _ seed_ir seed_codes <<<"$seed"
echo
echo "| policy | instructions per request (server proxy) | answers |"
echo "|---|---|---|"
echo "| allow-all (default policy) | $((allow_ir / N)) | $allow_codes |"
echo "| seed booksapp policy | $((seed_ir / N)) | $seed_codes |"
awk -v a="$allow_ir" -v s="$seed_ir" 'BEGIN { printf "\nenforcing the seed policy costs %+.2f%% instructions per request (target: <= 5%%)\n", (s - a) * 100 / a }'
