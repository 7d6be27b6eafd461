#!/usr/bin/env bash
# Instructions per request of each proxy pair, counted by valgrind's callgrind:
# deterministic on a loaded machine (no timings), to run before and after every
# hot-path change. Also a per-request cost breakdown (TLS, HTTP/1, HTTP/2 hop,
# policy, metrics, allocation, runtime, ...) and syscalls per request (strace).
#
#   usage (root): bench/instructions.sh [--modes ztmesh,haproxy,linkerd2] [-n N] [-c C] [--reps R] [--no-strace]
#
#   pod A: netns zi-a, eth0 10.236.0.1/24  ==== veth ====  pod B: netns zi-b, eth0 10.236.0.2/24
#   load generator (oha -n N -c C)                          nginx backend :8080 ("ok")
#   + client-side proxy                                      + server-side proxy
#
# Modes (the same topology as the reference harness, ../shared/bench/netns, with
# our own copies of its configs in bench/instructions/):
#   ztmesh    ztmesh-proxy pair, transparent (iptables), mTLS P-256, fake control
#             plane (bench/instructions/fakecp.py) in each pod; ZTMESH_PROXY_BIN or
#             built here (release, line tables for attribution)
#   haproxy   HAProxy pair (plain in A -> TLS 1.3 mTLS -> B), nbthread 1
#   linkerd2  linkerd2-proxy pair like ztmesh, only when LINKERD2_PROXY_BIN is set
# Per mode and rep, two runs of the pair, both proxies under valgrind --tool=callgrind
# (profiles written at exit): a base run (start-up, readiness checks, W warm-up requests at
# concurrency C) and a full run (the same, then exactly N more requests at C with oha -n;
# every answer must be 200). Instructions per request = (full - base) / N, for A, B and A+B,
# with ratios against HAProxy and the spread over reps; the breakdown subtracts the base
# profile symbol by symbol (bench/instructions/breakdown.py). Then, once per mode and
# without valgrind, strace -c -f attached to both proxies counts syscalls over N more
# requests (timing-dependent, so indicative). Output: tables on stdout,
# bench/results/instructions-<stamp>.json (not committed); callgrind files stay in $WORK.
# Knobs (env): N=2000 C=16 WARMUP=500 REPS=2 ZI_PREFIX=zi ZI_NET=10.236.0 PROXY_UID=2102
#   VENV=~/.cache/bench-venv ZTMESH_PROXY_BIN LINKERD2_PROXY_BIN OHA WORK=/tmp/zi-<stamp>
# Needs: valgrind, strace, haproxy, nginx, curl, iproute2, iptables,
#   setpriv (util-linux), openssl, python3 with venv, oha (cargo install oha), and the
#   linkerd2-proxy-api 0.20 protos in the cargo registry (cargo fetch). It says what is missing.
# Only the two namespaces it creates are touched; every load is bounded (oha -n, timeouts);
# processes, namespaces and iptables rules are removed on exit, failure or Ctrl-C.
set -euo pipefail
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LIB=$HERE/instructions

MODES_ARG=ztmesh,haproxy,linkerd2; N=${N:-2000}; C=${C:-16}; WARMUP=${WARMUP:-500}; REPS=${REPS:-2}; STRACE=1
while (($#)); do
  case $1 in
    --modes) MODES_ARG=${2:?}; shift ;;
    -n) N=${2:?}; shift ;;
    -c) C=${2:?}; shift ;;
    --reps) REPS=${2:?}; shift ;;
    --no-strace) STRACE=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "instructions: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $(id -u) == 0 ]] || { echo "instructions: needs root (network namespaces, iptables)" >&2; exit 2; }

PFX=${ZI_PREFIX:-zi}; NSA=$PFX-a; NSB=$PFX-b
NET=${ZI_NET:-10.236.0}; A_IP=$NET.1; B_IP=$NET.2
PROXY_UID=${PROXY_UID:-2102}
VENV=${VENV:-$HOME/.cache/bench-venv}
CLIENT_ID=client.default.serviceaccount.identity.linkerd.cluster.local
SERVER_ID=server.default.serviceaccount.identity.linkerd.cluster.local
STAMP=$(date +%Y%m%d-%H%M%S)
WORK=${WORK:-/tmp/zi-$STAMP}
RESULTS=$HERE/results/instructions-$STAMP.json
mkdir -p "$WORK/logs" "$WORK/cg" "$HERE/results"
chmod 755 "$WORK"; chmod 777 "$WORK/cg"
log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }
inA() { ip netns exec "$NSA" "$@"; }
inB() { ip netns exec "$NSB" "$@"; }

# ------------------------------------------------------------------ prerequisites
missing=()
for c in valgrind:valgrind haproxy:haproxy nginx:nginx curl:curl ip:iproute2 \
         iptables:iptables setpriv:util-linux openssl:openssl python3:python3; do
  command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c#*:}")
done
[[ $STRACE == 1 ]] && { command -v strace >/dev/null 2>&1 || missing+=(strace); }
((${#missing[@]} == 0)) || die "missing: apt-get install -y ${missing[*]}"
OHA=${OHA:-$(command -v oha || echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha")}
[[ -x $OHA ]] || die "oha missing: cargo install oha --locked --version 1.16.0 (or set OHA)"
if ! "$VENV/bin/python" -c 'import grpc, grpc_tools, cryptography' 2>/dev/null; then
  log "python venv $VENV for the fake control plane (pip: $LIB/requirements.txt)"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$LIB/requirements.txt" || die "venv/pip install failed"
fi
PY=$VENV/bin/python

MODES=()
IFS=, read -r -a want <<< "$MODES_ARG"
for m in "${want[@]}"; do
  case $m in
    haproxy) MODES+=(haproxy) ;;
    ztmesh)
      if [[ -z ${ZTMESH_PROXY_BIN:-} ]]; then
        log "building ztmesh-proxy (release, line tables only for attribution; the release profile itself is unchanged)"
        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --locked -p ztmesh-proxy \
          --manifest-path "$REPO/Cargo.toml" >&2 || die "cargo build failed"
        ZTMESH_PROXY_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/ztmesh-proxy
      fi
      [[ -x $ZTMESH_PROXY_BIN ]] || die "no ztmesh-proxy at $ZTMESH_PROXY_BIN"
      MODES+=(ztmesh) ;;
    linkerd2)
      if [[ -n ${LINKERD2_PROXY_BIN:-} && -x ${LINKERD2_PROXY_BIN:-} ]]; then MODES+=(linkerd2)
      else log "linkerd2: LINKERD2_PROXY_BIN not set or not executable, skipped"; fi ;;
    *) die "unknown mode $m (ztmesh, haproxy, linkerd2)" ;;
  esac
done
((${#MODES[@]})) || die "no mode to measure"

# ------------------------------------------------------------------ processes and cleanup
declare -A P=()
NS_MADE=()
CLEANED=0
start_bg() { # NAME NETNS LOG CMD... (exec chain: $! is the command's pid)
  local name=$1 ns=$2 lf=$3; shift 3
  ip netns exec "$ns" "$@" > "$lf" 2>&1 &
  P[$name]=$!
}
stop_proc() { # NAME
  local pid=${P[$1]:-} i
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || true
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "P[$1]"
}
cleanup() {
  [[ $CLEANED == 1 ]] && return 0
  CLEANED=1; set +e
  local name ns p
  for name in "${!P[@]}"; do stop_proc "$name"; done
  for ns in "${NS_MADE[@]}"; do   # anything left in our own namespaces is ours
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$ns" && log "cleanup: netns $ns deleted"
  done
  NS_MADE=()
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# ------------------------------------------------------------------ topology, PKI, backend, control plane
for ns in "$NSA" "$NSB"; do [[ -e /run/netns/$ns ]] && die "netns $ns exists (another run? 'ip netns del $ns')"; done
ip netns add "$NSA"; NS_MADE+=("$NSA")
ip netns add "$NSB"; NS_MADE+=("$NSB")
ip -n "$NSA" link add eth0 type veth peer name eth0 netns "$NSB"
ip -n "$NSA" addr add "$A_IP/24" dev eth0
ip -n "$NSB" addr add "$B_IP/24" dev eth0
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
log "topology: $NSA $A_IP <-veth-> $NSB $B_IP; work dir $WORK"

bash "$LIB/gen-pki.sh" "$WORK/pki" "$CLIENT_ID" "$SERVER_ID" > "$WORK/logs/pki.log" 2>&1 || die "PKI: see $WORK/logs/pki.log"
for side in client server; do
  d=$WORK/pod-$side; mkdir -p "$d/id"
  cp "$WORK/pki/id-$side/key.p8" "$WORK/pki/id-$side/csr.der" "$d/id/"
  cp "$WORK/pki/id-$side/name" "$WORK/pki/ca.crt" "$WORK/pki/token" "$d/"
  chown -R "$PROXY_UID:$PROXY_UID" "$d"
done

protos=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/linkerd2-proxy-api-0.20*/proto 2>/dev/null | sort -V | tail -1 || true)
[[ -n $protos ]] || die "linkerd2-proxy-api 0.20 protos not in the cargo registry (cargo fetch in this repository)"
mkdir -p "$WORK/proto" "$WORK/gen"; cp "$protos"/*.proto "$WORK/proto/"
sed -i 's#"google/protobuf/timestamp/timestamp.proto"#"google/protobuf/timestamp.proto"#' "$WORK/proto/"*.proto
wkt=$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
"$PY" -m grpc_tools.protoc -I "$wkt" -I "$WORK/proto" --python_out="$WORK/gen" --grpc_python_out="$WORK/gen" "$WORK/proto/"*.proto

mkdir -p "$WORK/backend"
start_bg backend "$NSB" "$WORK/logs/backend.log" nginx -p "$WORK/backend/" -c "$LIB/nginx.conf" -e "$WORK/backend/error.log"
for side in a b; do
  ns=$NSA; [[ $side == b ]] && ns=$NSB
  start_bg "fakecp_$side" "$ns" "$WORK/logs/fakecp-$side.log" "$PY" -u "$LIB/fakecp.py" --listen 127.0.0.1:8090 \
    --pki "$WORK/pki" --gen "$WORK/gen" --profile-endpoint "$B_IP:8080=$SERVER_ID"
done
for side in a b; do
  for _ in $(seq 100); do grep -q "fake control plane on" "$WORK/logs/fakecp-$side.log" 2>/dev/null && break; sleep 0.2; done
  grep -q "fake control plane on" "$WORK/logs/fakecp-$side.log" || die "fake control plane $side: see $WORK/logs/fakecp-$side.log"
done
for _ in $(seq 50); do inB curl -fs -m 1 -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.2; done
inB curl -fs -m 1 -o /dev/null http://127.0.0.1:8080/ || die "backend nginx did not start (see $WORK/backend/error.log)"

# ------------------------------------------------------------------ modes
mode_url() { if [[ $1 == haproxy ]]; then echo "http://127.0.0.1:10001/"; else echo "http://$B_IP:8080/"; fi; }

mesh_iptables() { # on|off
  if [[ $1 == on ]]; then
    inA iptables -w -t nat -N ZI_OUTPUT
    inA iptables -w -t nat -A ZI_OUTPUT -m owner --uid-owner "$PROXY_UID" -j RETURN
    inA iptables -w -t nat -A ZI_OUTPUT -o lo -j RETURN
    inA iptables -w -t nat -A ZI_OUTPUT -p tcp -j REDIRECT --to-ports 4140
    inA iptables -w -t nat -A OUTPUT -j ZI_OUTPUT
    inB iptables -w -t nat -N ZI_PREROUTING
    inB iptables -w -t nat -A ZI_PREROUTING -p tcp -m multiport --dports 4190,4191 -j RETURN
    inB iptables -w -t nat -A ZI_PREROUTING -p tcp -j REDIRECT --to-ports 4143
    inB iptables -w -t nat -A PREROUTING -j ZI_PREROUTING
  else
    inA iptables -w -t nat -D OUTPUT -j ZI_OUTPUT 2>/dev/null || true
    inA iptables -w -t nat -F ZI_OUTPUT 2>/dev/null || true; inA iptables -w -t nat -X ZI_OUTPUT 2>/dev/null || true
    inB iptables -w -t nat -D PREROUTING -j ZI_PREROUTING 2>/dev/null || true
    inB iptables -w -t nat -F ZI_PREROUTING 2>/dev/null || true; inB iptables -w -t nat -X ZI_PREROUTING 2>/dev/null || true
  fi
}

# start_pair MODE TAG WRAP... : starts proxy A and B (each prefixed by WRAP, e.g. valgrind), sets PID_A/PID_B
start_pair() {
  local mode=$1 tag=$2 side ns d inports bin; shift 2
  local -a wrap=("$@")
  if [[ $mode == haproxy ]]; then
    mkdir -p "$WORK/haproxy"
    local -a he=(env "ZB_PKI=$WORK/pki" "ZB_RUN=$WORK/haproxy" "ZB_B_IP=$B_IP")
    start_bg px_b "$NSB" "$WORK/logs/$tag-b.log" "${he[@]}" "${wrap[@]/@SIDE@/b}" haproxy -db -f "$LIB/haproxy-b.cfg"
    start_bg px_a "$NSA" "$WORK/logs/$tag-a.log" "${he[@]}" "${wrap[@]/@SIDE@/a}" haproxy -db -f "$LIB/haproxy-a.cfg"
  else
    if [[ $mode == linkerd2 ]]; then bin=$LINKERD2_PROXY_BIN; else bin=$ZTMESH_PROXY_BIN; fi
    mesh_iptables on
    for side in server client; do
      ns=$NSA; inports=; d=$WORK/pod-$side
      [[ $side == server ]] && { ns=$NSB; inports=8080; }
      local -a e=(
        LINKERD2_PROXY_LOG=warn LINKERD2_PROXY_LOG_FORMAT=plain LINKERD2_PROXY_CORES=1
        LINKERD2_PROXY_IDENTITY_DIR="$d/id" LINKERD2_PROXY_IDENTITY_TOKEN_FILE="$d/token"
        LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS="$(cat "$d/ca.crt")" LINKERD2_PROXY_IDENTITY_LOCAL_NAME="$(cat "$d/name")"
        LINKERD2_PROXY_IDENTITY_SVC_ADDR=127.0.0.1:8090
        LINKERD2_PROXY_IDENTITY_SVC_NAME=identity.linkerd.serviceaccount.identity.linkerd.cluster.local
        LINKERD2_PROXY_DESTINATION_SVC_ADDR=127.0.0.1:8090
        LINKERD2_PROXY_DESTINATION_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local
        LINKERD2_PROXY_POLICY_SVC_ADDR=127.0.0.1:8090
        LINKERD2_PROXY_POLICY_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local
        LINKERD2_PROXY_POLICY_WORKLOAD="{\"ns\":\"default\",\"pod\":\"$side\"}"
        LINKERD2_PROXY_DESTINATION_CONTEXT="{\"ns\":\"default\",\"nodeName\":\"bench-node\",\"pod\":\"$side\"}"
        LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS="$NET.0/24"
        LINKERD2_PROXY_INBOUND_LISTEN_ADDR=0.0.0.0:4143 LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=127.0.0.1:4140
        LINKERD2_PROXY_ADMIN_LISTEN_ADDR=127.0.0.1:4191 LINKERD2_PROXY_CONTROL_LISTEN_ADDR=127.0.0.1:4190
        LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=all-unauthenticated LINKERD2_PROXY_INBOUND_PORTS="$inports"
      )
      local s=a; [[ $side == server ]] && s=b
      start_bg "px_$s" "$ns" "$WORK/logs/$tag-$s.log" env -i PATH=/usr/bin:/bin HOME=/tmp "${e[@]}" \
        setpriv --reuid="$PROXY_UID" --regid="$PROXY_UID" --clear-groups "${wrap[@]/@SIDE@/$s}" "$bin"
    done
  fi
  PID_A=${P[px_a]}; PID_B=${P[px_b]}
  # ready: 5 requests through the pair answer 200 (valgrind makes start-up slow: up to 180 s)
  local url ok=0 i
  url=$(mode_url "$mode")
  for i in $(seq 900); do
    kill -0 "$PID_A" 2>/dev/null && kill -0 "$PID_B" 2>/dev/null || break
    if [[ $(inA curl -s -m 5 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null) == 200 ]]; then ok=1; break; fi
    sleep 0.2
  done
  [[ $ok == 1 ]] || { log "$tag: the pair never answered 200 (logs: $WORK/logs/$tag-*.log)"; return 1; }
  for i in 1 2 3 4 5; do
    [[ $(inA curl -s -m 10 -w ' %{http_code}' "$url") == "ok 200" ]] || { log "$tag: verification request $i failed"; return 1; }
  done
  if [[ $mode != haproxy ]] && (($(b_tls_reqs) < 5)); then
    log "$tag: INVALID: B's proxy shows no inbound request_total with tls=\"true\" and A's client_id"; return 1
  fi
}
stop_pair() { stop_proc px_a; stop_proc px_b; mesh_iptables off; }
b_tls_reqs() { inB curl -s -m 10 http://127.0.0.1:4191/metrics | awk -v id="client_id=\"$CLIENT_ID\"" \
  '/^request_total\{direction="inbound"/ && /tls="true"/ && index($0, id) {s += $NF} END {printf "%d\n", s}'; }

# load COUNT OUTFILE URL: exactly COUNT requests at concurrency C; fails unless all answered 200
load() {
  local n=$1 out=$2 url=$3
  inA timeout -k 5 900 "$OHA" --no-tui --output-format json -n "$n" -c "$C" "$url" > "$out" 2> "$out.err" || true
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d.get("statusCodeDistribution",{}); n=int(sys.argv[2])
sys.exit(0 if s.get("200",0)==n and sum(s.values())==n else 1)' "$out" "$n" \
    || { log "load: not all $n requests answered 200: $(head -c 300 "$out" "$out.err" | tr '\n' ' ')"; return 1; }
}

JSONL=$WORK/records.jsonl; : > "$JSONL"
# One pair under callgrind: start, warm-up, COUNT requests (0: none), stop; the profiles are
# written at exit. (vgdb's zero/dump would avoid the second run, but valgrind 3.19 asserts
# in its ptrace invoker on the multi-threaded mesh proxies here.)
cg_run() { # MODE TAG COUNT
  local mode=$1 tag=$2 count=$3 url base=$WORK/cg/$2
  url=$(mode_url "$mode")
  start_pair "$mode" "$tag" valgrind --tool=callgrind --dump-instr=no "--callgrind-out-file=$base-@SIDE@.%p" \
    || { stop_pair; return 1; }
  load "$WARMUP" "$WORK/$tag-warmup.json" "$url" || { stop_pair; return 1; }
  BT0=0; BT1=0
  [[ $mode != haproxy ]] && BT0=$(b_tls_reqs)
  if ((count > 0)); then
    log "$tag: $count requests at c=$C"
    load "$count" "$WORK/$tag.json" "$url" || { stop_pair; return 1; }
  fi
  [[ $mode != haproxy ]] && BT1=$(b_tls_reqs)
  CG_A=$base-a.$PID_A; CG_B=$base-b.$PID_B
  stop_pair
  [[ -s $CG_A && -s $CG_B ]] || { log "$tag: no callgrind profile at exit ($CG_A, $CG_B)"; return 1; }
}

# Instructions of N requests = profile(start-up + warm-up + N) - profile(start-up + warm-up),
# both at exit, side by side (the base run also answers the same 5 readiness requests and scrapes).
measure() { # MODE REP
  local mode=$1 rep=$2 fa fb ba bb bc s
  log "$mode rep $rep: base run (start-up + $WARMUP warm-up requests) under callgrind"
  cg_run "$mode" "$mode-$rep-base" 0 || return 1
  ba=$CG_A; bb=$CG_B
  log "$mode rep $rep: full run (start-up + $WARMUP warm-up + $N requests) under callgrind"
  cg_run "$mode" "$mode-$rep-full" "$N" || return 1
  fa=$CG_A; fb=$CG_B; bc=$((BT1 - BT0))
  for s in a b; do
    local f=$fa b=$ba; [[ $s == b ]] && { f=$fb; b=$bb; }
    "$PY" "$LIB/breakdown.py" "$f" "$b" "$N" --top 30 \
      | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d.update(kind="cg", mode=sys.argv[1], rep=int(sys.argv[2]), side=sys.argv[3], b_counted=int(sys.argv[4])); print(json.dumps(d))' \
        "$mode" "$rep" "$s" "$bc" >> "$JSONL"
  done
}

strace_run() { # MODE
  local mode=$1 tag=$1-strace url s pid
  url=$(mode_url "$mode")
  log "$tag: syscalls over $N requests (strace -c -f, attached after a warm-up)"
  start_pair "$mode" "$tag" || { stop_pair; return 1; }
  load "$WARMUP" "$WORK/$tag-warmup.json" "$url" || { stop_pair; return 1; }
  for s in a b; do
    pid=$PID_A; [[ $s == b ]] && pid=$PID_B
    local -a tids=()
    for t in /proc/"$pid"/task/*; do tids+=(-p "${t##*/}"); done
    strace -c -f -o "$WORK/$tag-$s.txt" "${tids[@]}" 2> "$WORK/logs/$tag-strace-$s.log" &
    P[strace_$s]=$!
  done
  for _ in $(seq 100); do
    [[ $(grep -c attached "$WORK/logs/$tag-strace-a.log" "$WORK/logs/$tag-strace-b.log" 2>/dev/null | awk -F: '$2>0' | wc -l) == 2 ]] && break
    sleep 0.1
  done
  sleep 0.5
  load "$N" "$WORK/$tag.json" "$url" || { stop_proc strace_a; stop_proc strace_b; stop_pair; return 1; }
  for s in a b; do kill -INT "${P[strace_$s]}" 2>/dev/null || true; wait "${P[strace_$s]}" 2>/dev/null || true; unset "P[strace_$s]"; done
  for s in a b; do
    awk -v n="$N" -v mode="$mode" -v side="$s" '
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { out = out sprintf("%s\"%s\": %.3f", sep, $NF, $4 / n); sep = ", " }
      END { printf "{\"kind\": \"strace\", \"mode\": \"%s\", \"side\": \"%s\", \"per_request\": {%s}}\n", mode, side, out }' \
      "$WORK/$tag-$s.txt" >> "$JSONL"
  done
  stop_pair
}

for rep in $(seq "$REPS"); do
  for mode in "${MODES[@]}"; do measure "$mode" "$rep" || die "$mode rep $rep failed (see $WORK/logs)"; done
done
if [[ $STRACE == 1 ]]; then
  for mode in "${MODES[@]}"; do strace_run "$mode" || log "$mode: strace run failed (syscalls not reported)"; done
fi
cleanup
"$PY" "$LIB/report.py" "$JSONL" "$RESULTS" "$N" "$C" "$WARMUP"
log "raw callgrind files and logs: $WORK"
