#!/usr/bin/env bash
# Soak: does anything grow while a meshed pair is held under moderate load
# and its certificates keep turning over? On loopback (127.0.71.x, no root,
# no iptables) it starts a controller, the sample app `authors` behind an
# explicit-mode server proxy and a client proxy (webapp), then sends
# open-loop load (--rps, default 200 req/s, in 1-minute `ztmesh app load`
# rounds) through the client proxy for --minutes (default 30). Workload
# certificates live 60 s, so each proxy refreshes its own about every 42 s,
# and the issuer is rotated (`ztmesh install --rotate-issuer`) every 10
# minutes. Every 10 s it samples VmRSS and the open-fd count of both proxies
# and the controller into bench/results/soak-DATE.csv (elapsed_s, process,
# pid, rss_kib, fds). At the end it prints the requests sent / ok / failed,
# the certificate refreshes each proxy counted (`control_identity_cert_
# refreshes_total`), the issuer rotations, and per process RSS and fds
# (first / last / max) with their least-squares slope over the run after
# 2 minutes of warm-up. How to read it: a healthy run has no failed
# requests, one refresh per ~42 s per proxy with no errors, and slopes near
# zero; a leak shows as a slope that stays positive as the run gets longer
# (the RSS slope of a short run is dominated by allocator noise: a few
# hundred KiB/min over 3 minutes means little, the same over 30 minutes is
# a leak; fds are counted at an instant, so one sample jumps with the
# connections the load generator has open then, but a steady climb is a
# leak at any length). Logs and the load rounds are kept beside the CSV in
# bench/results/soak-DATE.logs/.
# Run by hand, not in CI. Needs curl and awk.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

usage() {
  cat <<EOF
usage: bench/soak.sh [--minutes N] [--rps N] [--rotate-minutes N] [--help]

Holds --rps requests/s (default 200) through a meshed pair on loopback for
--minutes (default 30, or SOAK_MINUTES) while certificates rotate (60 s
workload certificates; the issuer every --rotate-minutes, default 10),
samples RSS and open fds of both proxies and the controller every 10 s into
bench/results/soak-DATE.csv, and prints a report with the slopes.

  ZTMESH_BIN=PATH   use this ztmesh binary instead of building the release one
  RESULTS_DIR=DIR   where the CSV goes (default bench/results)
EOF
}

minutes="${SOAK_MINUTES:-30}"
rps=200
rotate_minutes=10
while (($#)); do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a value}"; shift 2 ;;
    --minutes=*) minutes="${1#*=}"; shift ;;
    --rps) rps="${2:?--rps needs a value}"; shift 2 ;;
    --rps=*) rps="${1#*=}"; shift ;;
    --rotate-minutes) rotate_minutes="${2:?--rotate-minutes needs a value}"; shift 2 ;;
    --rotate-minutes=*) rotate_minutes="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "soak: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
for v in minutes rps rotate_minutes; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "soak: --${v/_/-} must be a positive integer, not '${!v}'" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "soak: needs curl" >&2; exit 2; }

# Addresses: none of them the defaults (127.0.0.1:8080 / 8086 / 8090 / 8084).
client_ip=127.0.71.1
server_ip=127.0.71.2
cp_ip=127.0.71.10
identity_addr=$cp_ip:8080
destination_addr=$cp_ip:8086
policy_addr=$cp_ip:8090
viz_addr=$cp_ip:8084
interval=10       # seconds between samples
warmup=120        # seconds left out of the slopes
url=http://authors.booksapp.svc.cluster.local:7001/authors.json

if [[ -n ${ZTMESH_BIN:-} ]]; then
  bin="$ZTMESH_BIN"
else
  echo "soak: building the release ztmesh" >&2
  cargo build --release --locked -p ztmesh --manifest-path "$repo/Cargo.toml" >&2
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/ztmesh"
fi
[[ -x $bin ]] || { echo "soak: no executable ztmesh at $bin" >&2; exit 2; }

results="${RESULTS_DIR:-$here/results}"
mkdir -p "$results"
csv="$results/soak-$(date +%Y%m%d-%H%M%S).csv"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/ztmesh-soak.XXXXXX")"
pids=()        # every long-lived process this script started
load_loop=""   # the subshell running load rounds
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $load_loop ]] && kill "$load_loop" 2>/dev/null || true
  [[ -f $tmp/load.pid ]] && kill "$(cat "$tmp/load.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Give them 5 s to stop (the controller drains streams), then SIGKILL.
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}" ${load_loop:+"$load_loop"}; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pids[@]}" ${load_loop:+"$load_loop"}; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Keep the logs and the load rounds beside the CSV.
  if [[ -n ${csv:-} && -d $tmp/logs ]]; then
    mkdir -p "${csv%.csv}.logs"
    cp "$tmp"/logs/*.log "${csv%.csv}.logs/" 2>/dev/null || true
    [[ -f $tmp/load.out ]] && cp "$tmp/load.out" "${csv%.csv}.logs/load-rounds.txt"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
  echo "soak: $*" >&2
  for f in "$tmp"/logs/*.log; do
    [[ -f $f ]] || continue
    echo "--- last lines of $(basename "$f")" >&2
    tail -n 15 "$f" >&2
  done
  exit 1
}

# spawn NAME CMD...: starts CMD in the background, output to logs/NAME.log.
declare -A pid_of
spawn() {
  local name=$1; shift
  "$@" >"$tmp/logs/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
}

alive() { kill -0 "${pid_of[$1]}" 2>/dev/null || die "$1 (pid ${pid_of[$1]}) is gone"; }

# wait_until SECS WHAT CMD...: polls CMD every 0.2 s.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not ready after ${secs}s"
    for n in "${!pid_of[@]}"; do alive "$n"; done
    sleep 0.2
  done
}

mkdir -p "$tmp/logs" "$tmp/manifests"
D="$tmp/identity"
"$bin" install --dir "$D" >"$tmp/logs/install.log" 2>&1 || die "ztmesh install failed"
for sa in webapp authors; do
  "$bin" token create --dir "$D" --namespace booksapp --service-account "$sa" >"$tmp/$sa.token" \
    || die "token for $sa"
done

workload() { # name ip
  cat <<EOF
apiVersion: workload.linkerd.io/v1beta1
kind: ExternalWorkload
metadata: {name: $1, namespace: booksapp, labels: {app: $1}, annotations: {config.ztmesh.io/proxy-mode: explicit}}
spec:
  meshTLS: {identity: $1.booksapp.serviceaccount.identity.linkerd.cluster.local, serverName: $1.booksapp.serviceaccount.identity.linkerd.cluster.local}
  workloadIPs: [{ip: $2}]
  ports: [{port: 18400, name: http}]
EOF
}
{
  workload authors "$server_ip"
  echo ---
  workload webapp "$client_ip"
  echo ---
  cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: authors, namespace: booksapp}
spec: {selector: {app: authors}, ports: [{port: 7001, targetPort: 18400}]}
EOF
} >"$tmp/manifests/pair.yaml"

spawn controller "$bin" controller --identity-dir "$D" --manifests "$tmp/manifests" \
  --identity-addr "$identity_addr" --destination-addr "$destination_addr" \
  --policy-addr "$policy_addr" --viz-addr "$viz_addr" --identity-ttl 60s
tcp_open() { timeout 1 bash -c "exec 3<>/dev/tcp/${1%:*}/${1##*:}"; }
for a in "$identity_addr" "$destination_addr" "$policy_addr"; do
  wait_until 30 "controller on $a" tcp_open "$a"
done

spawn authors-app "$bin" app serve --name authors --http "$server_ip:18400"

proxy() { # log-name local-sa app-addr
  local sa=$2
  spawn "$1" env \
    LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS="$(cat "$D/ca.crt")" \
    LINKERD2_PROXY_IDENTITY_TOKEN_FILE="$tmp/$sa.token" \
    LINKERD2_PROXY_IDENTITY_SVC_ADDR="$identity_addr" \
    LINKERD2_PROXY_IDENTITY_SVC_NAME=linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local \
    LINKERD2_PROXY_IDENTITY_LOCAL_NAME="$sa.booksapp.serviceaccount.identity.linkerd.cluster.local" \
    LINKERD2_PROXY_IDENTITY_MIN_REFRESH=1s \
    LINKERD2_PROXY_DESTINATION_SVC_ADDR="$destination_addr" \
    LINKERD2_PROXY_DESTINATION_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local \
    ZTMESH_PROXY_MODE=explicit \
    ZTMESH_PROXY_APP_ADDR="$3" \
    "$bin" proxy
}
proxy server-proxy authors "$server_ip:18400"
proxy client-proxy webapp "$client_ip:9"
wait_until 30 "the server proxy" curl -sf -m 1 "http://$server_ip:4191/ready"
wait_until 30 "the client proxy" curl -sf -m 1 "http://$client_ip:4191/ready"
through() { [[ $("$bin" app load "$url" --proxy "$client_ip:4140" --rps 1 --duration 1s) == *" ok=1 "* ]]; }
wait_until 30 "a request through the pair" through

# --- the soak ---------------------------------------------------------------
total=$((minutes * 60))
start=$(date +%s)
end=$((start + total))
echo "soak: ${minutes} min at ${rps} req/s through $client_ip -> $server_ip; samples in $csv" >&2

# Load in 1-minute rounds (the last one cut to what remains), one line per round.
(
  while :; do
    left=$((end - $(date +%s)))
    ((left > 0)) || break
    d=$((left < 60 ? left : 60))
    printf 'at_s=%d ' $(($(date +%s) - start)) >>"$tmp/load.out"
    timeout $((d + 30)) "$bin" app load "$url" --proxy "$client_ip:4140" --rps "$rps" --duration "${d}s" \
      >>"$tmp/load.out" 2>>"$tmp/logs/load.log" &
    echo $! >"$tmp/load.pid"
    wait $! || echo "sent=0 ok=0 errors=0 round_failed=1 (the load generator failed: see logs/load.log)" >>"$tmp/load.out"
  done
) &
load_loop=$!

echo "elapsed_s,process,pid,rss_kib,fds" >"$csv"
sample() { # elapsed
  for n in client-proxy server-proxy controller; do
    alive "$n"
    local p=${pid_of[$n]} rss fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
    fds=$(ls "/proc/$p/fd" | wc -l)
    echo "$1,$n,$p,$rss,$fds" >>"$csv"
  done
}

rotations=0
next_rotation=$((start + rotate_minutes * 60))
next_sample=$start
while :; do
  now=$(date +%s)
  if ((now >= next_sample)); then
    sample $((now - start))
    next_sample=$((next_sample + interval))
  fi
  ((now >= end)) && break
  if ((now >= next_rotation && next_rotation < end)); then
    "$bin" install --rotate-issuer --dir "$D" >>"$tmp/logs/install.log" 2>&1 || die "issuer rotation failed"
    rotations=$((rotations + 1))
    echo "soak: issuer rotated at $((now - start))s" >&2
    next_rotation=$((next_rotation + rotate_minutes * 60))
  fi
  kill -0 "$load_loop" 2>/dev/null || [[ $(date +%s) -ge $end ]] || die "the load loop stopped early"
  sleep 1
done
# The last round ends at the deadline; it gets 60 s more to report.
for _ in $(seq 600); do kill -0 "$load_loop" 2>/dev/null || break; sleep 0.1; done
kill -0 "$load_loop" 2>/dev/null && die "the last load round did not finish"
wait "$load_loop" || true
load_loop=""
elapsed=$(($(date +%s) - start))

# --- the report --------------------------------------------------------------
sum() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) s += substr($i, length(k) + 2) } END { print s + 0 }' "$tmp/load.out"; }
sent=$(sum sent); ok=$(sum ok); errors=$(sum errors); rounds=$(wc -l <"$tmp/load.out"); bad_rounds=$(sum round_failed)
refreshes() { # ip result
  curl -sf -m 5 "http://$1:4191/metrics" \
    | awk -v r="$2" '$1 == "control_identity_cert_refreshes_total{result=\"" r "\"}" { print $2; f = 1 } END { if (!f) print "?" }'
}

echo
echo "ztmesh soak: $((elapsed / 60))m$((elapsed % 60))s at ${rps} req/s ($rounds load rounds$( ((bad_rounds)) && echo ", $bad_rounds of them failed to report"))"
printf '  requests: sent %d, ok %d, failed %d (%d without a response, %d with a 4xx/5xx)\n' \
  "$sent" "$ok" $((sent - ok)) "$errors" $((sent - ok - errors))
printf '  certificate refreshes: client proxy %s ok / %s error, server proxy %s ok / %s error\n' \
  "$(refreshes $client_ip ok)" "$(refreshes $client_ip error)" "$(refreshes $server_ip ok)" "$(refreshes $server_ip error)"
statuses=$(grep -o 'status_[0-9]*=[0-9]*' "$tmp/load.out" | awk -F'[_=]' '{ n[$2] += $3 } END { for (s in n) printf " %s=%d", s, n[s] }' | tr ' ' '\n' | sort | xargs)
echo "  responses by status: ${statuses:-none}"
echo "  issuer rotations: $rotations (every ${rotate_minutes} min)"
awk -F, -v warmup="$warmup" '
  NR == 1 { next }
  {
    p = $2; t = $1 / 60; r = $4; f = $5
    if (!(p in n)) { order[++np] = p; r0[p] = r; f0[p] = f; rmax[p] = r; fmax[p] = f }
    n[p]++; r1[p] = r; f1[p] = f
    if (r > rmax[p]) rmax[p] = r
    if (f > fmax[p]) fmax[p] = f
    # All samples, and the ones after the warm-up, for the two fits.
    A[p, "n"]++; A[p, "t"] += t; A[p, "tt"] += t * t; A[p, "r"] += r; A[p, "tr"] += t * r; A[p, "f"] += f; A[p, "tf"] += t * f
    if ($1 >= warmup) { W[p, "n"]++; W[p, "t"] += t; W[p, "tt"] += t * t; W[p, "r"] += r; W[p, "tr"] += t * r; W[p, "f"] += f; W[p, "tf"] += t * f }
  }
  function slope(S, p, y, ty,   d) {
    d = S[p, "n"] * S[p, "tt"] - S[p, "t"] * S[p, "t"]
    return d == 0 ? 0 : (S[p, "n"] * S[p, ty] - S[p, "t"] * S[p, y]) / d
  }
  END {
    for (i = 1; i <= np; i++) if (W[order[i], "n"] >= 3) post = 1
    printf "  per process (slopes: least squares over %s):\n", post ? sprintf("the samples after %d s of warm-up", warmup) : "all samples (the run is too short to skip the warm-up)"
    printf "    %-13s %28s %20s %16s %12s\n", "", "RSS MiB first/last/max", "fds first/last/max", "RSS KiB/min", "fds/min"
    for (i = 1; i <= np; i++) {
      p = order[i]
      if (post) { sr = slope(W, p, "r", "tr"); sf = slope(W, p, "f", "tf"); m = W[p, "n"] }
      else { sr = slope(A, p, "r", "tr"); sf = slope(A, p, "f", "tf"); m = A[p, "n"] }
      printf "    %-13s %28s %20s %+16.1f %+12.2f   (%d samples)\n", p,
        sprintf("%.1f / %.1f / %.1f", r0[p] / 1024, r1[p] / 1024, rmax[p] / 1024),
        sprintf("%d / %d / %d", f0[p], f1[p], fmax[p]), sr, sf, m
    }
  }' "$csv"
echo "  samples: $csv (logs and load rounds: ${csv%.csv}.logs/)"
