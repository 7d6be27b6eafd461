#!/usr/bin/env python3
"""Per-request cost breakdown of one callgrind profile (used by bench/instructions.sh).

  usage: breakdown.py CALLGRIND_OUT [BASE_OUT] N [--top K]   -> one JSON object on stdout

With BASE_OUT, the costs of BASE_OUT (same start-up and warm-up, no measured
requests) are subtracted key by key before attribution.

Reads a callgrind output file (events: Ir; written with --dump-instr=no, so
costs are per source line) and attributes every instruction to exactly one
category by its SELF cost: each cost line is charged once, to the category of
(1) the source file it comes from, when that is a crate or project file (with
line tables, inlined code keeps its own file: hyper's parser inlined into a
ztmesh function is still charged to hyper), else (2) the demangled function
symbol it runs in, else (3) the object (libssl/libcrypto -> TLS). Call lines
(the inclusive cost of a callee, after `calls=`) are skipped, so nothing is
counted twice and the categories sum to the profile's total.

No third-party modules: the standard library only.
"""
import json
import re
import sys
from collections import defaultdict

# (category, regex) in order; the first match wins. Matched against a file path
# or a demangled symbol (or an object path for the last resort).
CATEGORIES = [
    ("alloc", r"(^|[^a-z_])(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|_int_realloc|malloc_consolidate"
              r"|unlink_chunk|sysmalloc|tcache_\w+|__libc_(malloc|free|calloc|realloc)|__rust_(alloc|dealloc|realloc|alloc_zeroed)"
              r"|__rdl_\w+|__rg_\w+|posix_memalign|aligned_alloc|memalign|_int_memalign)$"
              r"|jemalloc|mimalloc|^CRYPTO_(malloc|zalloc|free|realloc|clear_free|clear_realloc)$|^je_|^_?mi_|^pool_(alloc|free|get|put|evict)|^__pool_|alloc::raw_vec::|alloc::alloc::"),
    ("memcpy", r"^(__)?(memcpy|memmove|memset|mempcpy|memcmp|bcmp|memchr|memrchr|strlen|strnlen|strcmp|strncmp)"
               r"|^__(memcpy|memmove|memset|memcmp|memchr)_\w+"),
    ("syscall", r"^(__GI_|__libc_)?(read|write|readv|writev|recv|recvfrom|recvmsg|send|sendto|sendmsg|epoll_wait|epoll_ctl"
                r"|epoll_pwait|accept4?|close|connect|getsockopt|setsockopt|getsockname|getpeername|clock_gettime|syscall"
                r"|__clock_gettime|__vdso_\w+|__GI___\w+|__libc_\w+|ioctl|shutdown|eventfd_write|futex\w*|__lll_\w+|pthread_\w+)$"
                r"|vdso"),
    ("tls", r"rustls|aws[-_]lc|/ring-|(^|[^a-z_])ring::|webpki|\blibssl\b|libssl\.so|libcrypto\.so|^ssl_sock|^SSL_|^ssl3_|^tls1?3?_|^EVP_"
            r"|^aes|^gcm|^ecp_nistz256|^sha256|^bn_|^BN_|^CRYPTO_|^ossl_|^OPENSSL_|^chacha|^poly1305|ztmesh_tls|/ztmesh-tls/"),
    ("policy", r"ztmesh_authz|/ztmesh-authz/|ztmesh_policy|/ztmesh-policy/|ztmesh_proxy::(inbound::(authorize|policy|client_id)"
               r"|outbound::(policy|route_policy|profile|discover\w*|balance|cache))|/src/inbound/(authorize|policy|client_id)\.rs"
               r"|/src/outbound/(policy|route_policy|profile|discover\w*|balance|cache)\.rs"
               r"|linkerd_(app_inbound::policy|proxy_server_policy|server_policy|http_route|proxy_client_policy|router|app_outbound::(policy|http::(logical|concrete)))"
               r"|^process_(switching|server)_rules|^acl_|^assign_server|^http_(req|res)_get_intercept_rule|^sample_|^smp_"),
    ("h2", r"/h2-[0-9]|\bh2::|hpack|hyper[^ ]*proto/h2|hyper::proto::h2|orig_proto|/orig_proto\.rs"),
    ("http1", r"httparse|hyper[^ ]*proto/h1|hyper::proto::h1|/hyper-[0-9]|\bhyper::|/hyper-util-|hyper_util::|/http-[0-9]|\bhttp::"
              r"|/http-body|http_body|^h1_|^h1c_|^h1s_|^htx_|^http_(parse|msg|find|add|replace|remove|get|req|res)\w*|^mux_h1"),
    ("metrics", r"prometheus|ztmesh_proxy::(metrics|route_metrics|authz_metrics|counted)|/src/(metrics/\w+|route_metrics|authz_metrics|counted)\.rs"
                r"|linkerd_metrics|linkerd_http_metrics|linkerd_app_core::metrics|linkerd_proxy_transport::metrics"
                r"|^stream_update_time_stats|^swrate_|^update_freq_ctr|^stktable_|^stats_"),
    ("runtime", r"/tokio-[0-9]|tokio::|/mio-|mio::|futures_util|/futures-|parking_lot|crossbeam"
                r"|^process_runnable_tasks|^run_tasks_from_lists|^task_|^tasklet_|^__task_|^_do_poll|^fd_|^run_poll_loop"
                r"|^wake_expired_tasks|^eb32_|^eb64_|^ebmb_|^__eb|^tick_|^clock_update|^sched_"),
    ("tracing", r"/tracing-|tracing::|tracing_core|tracing_subscriber"),
]
COMPILED = [(c, re.compile(r)) for c, r in CATEGORIES]
ORDER = [c for c, _ in CATEGORIES] + ["other"]
LIBRARY_FILE = re.compile(r"/rustc/|/library/(core|alloc|std)/|^\?\?\?$|/glibc|/sysdeps/|^$")


def classify_one(s):
    for c, rx in COMPILED:
        if rx.search(s):
            return c
    return None


def classify(ob, fl, fn):
    # 1. the source file of the instruction (inlined code keeps its crate), unless it is std/core
    if fl and not LIBRARY_FILE.search(fl):
        c = classify_one(fl)
        if c:
            return c
    # 2. the function symbol
    c = classify_one(fn)
    if c:
        return c
    # 3. the object
    if re.search(r"libssl|libcrypto", ob):
        return "tls"
    return "other"


def parse(path):
    names = {"ob": {}, "fl": {}, "fn": {}}
    cost = defaultdict(int)           # (ob, file, fn) -> self Ir
    total = None
    ob = fl = cur = fn = ""
    skip_next = False                 # the line after calls= is the callee's inclusive cost

    def name(kind, rest):
        m = re.match(r"\((\d+)\)\s*(.*)", rest)
        if not m:
            return rest
        key, val = m.group(1), m.group(2)
        table = names["fl" if kind in ("fl", "fi", "fe", "cfi", "cfl") else kind.lstrip("c")]
        if val:
            table[key] = val
        return table.get(key, "")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            ch = line[0]
            if ch.isdigit() or ch in "+-*":
                parts = line.split()
                if skip_next:
                    skip_next = False
                    continue
                if len(parts) >= 2:
                    cost[(ob, cur, fn)] += int(parts[1])
                continue
            key, _, rest = line.partition("=")
            if key == "ob":
                ob = name("ob", rest)
            elif key == "fl":
                fl = cur = name("fl", rest)
            elif key in ("fi", "fe"):
                cur = name(key, rest)
            elif key == "fn":
                fn = name("fn", rest)
                cur = fl
            elif key in ("cob", "cfi", "cfl", "cfn"):
                name(key, rest)       # remember compressed names; the callee is not charged here
            elif key == "calls":
                skip_next = True
            elif line.startswith(("summary:", "totals:")):
                v = int(line.split()[1])
                total = v if total is None else max(total, v)
    return cost, total


def main():
    args, top = sys.argv[1:], 25
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) == 3:                # FULL BASE N: the difference of two profiles
        path, base, n = args[0], args[1], int(args[2])
        cost, total = parse(path)
        bcost, btotal = parse(base)
        for k, v in bcost.items():
            cost[k] -= v
        total = (total or 0) - (btotal or 0)
    else:
        path, n = args[0], int(args[1])
        cost, total = parse(path)
    by_cat = defaultdict(int)
    by_sym = defaultdict(int)
    sym_cat = {}
    for (ob, fl, fn), ir in cost.items():
        c = classify(ob, fl, fn)
        by_cat[c] += ir
        # symbol key without the legacy mangling hash, and the object's basename
        s = re.sub(r"::h[0-9a-f]{16}$", "", fn) or "???"
        k = (c, s + "  [" + ob.rsplit("/", 1)[-1] + "]")
        by_sym[k] += ir
    self_sum = sum(by_cat.values())
    out = {
        "file": path, "requests": n, "total_ir": total if total else self_sum, "self_sum_ir": self_sum,
        "per_request": {c: round(by_cat.get(c, 0) / n) for c in ORDER},
        "top": [{"category": c, "symbol": s, "ir_per_request": round(v / n)}
                for (c, s), v in sorted(by_sym.items(), key=lambda kv: -kv[1])[:top]],
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
