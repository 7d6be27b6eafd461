#!/usr/bin/env python3
"""Tables for bench/instructions.sh: instructions per request, breakdown, syscalls.

  usage: report.py RECORDS.jsonl RESULT.json N C WARMUP   -> markdown on stdout, RESULT.json written

RECORDS.jsonl holds one line per (mode, rep, side) from breakdown.py ("kind": "cg")
and one per (mode, side) from the strace run ("kind": "strace").
"""
import json
import sys
from collections import defaultdict

LABELS = {
    "tls": "TLS records (rustls/aws-lc; OpenSSL)",
    "http1": "HTTP/1 parse + serialise, headers (httparse, hyper, http; HAProxy h1/htx)",
    "h2": "HTTP/2 hop between proxies (h2, hpack, orig-proto)",
    "policy": "routing, discovery and policy",
    "metrics": "metrics",
    "alloc": "allocation (malloc/free/realloc, RawVec growth)",
    "memcpy": "memcpy/memmove/memset/memcmp (libc)",
    "syscall": "syscall wrappers, user side (libc, vdso)",
    "runtime": "runtime/scheduler (tokio, mio, futures; HAProxy tasks, fd, epoll loop)",
    "tracing": "tracing",
    "other": "other",
}
ORDER = list(LABELS)


def fmt(v):
    return f"{v:,.0f}"


def main():
    recs_path, out_path, n, c, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    recs = [json.loads(line) for line in open(recs_path) if line.strip()]
    cg = [r for r in recs if r["kind"] == "cg"]
    st = [r for r in recs if r["kind"] == "strace"]
    modes = []
    for r in cg:
        if r["mode"] not in modes:
            modes.append(r["mode"])
    # per mode: per rep: side -> total Ir/request
    tot = defaultdict(lambda: defaultdict(dict))
    cats = defaultdict(lambda: defaultdict(list))      # mode -> (side, cat) -> [per rep]
    counted = defaultdict(list)
    for r in cg:
        tot[r["mode"]][r["rep"]][r["side"]] = r["total_ir"] / n
        for k, v in r["per_request"].items():
            cats[r["mode"]][(r["side"], k)].append(v)
        if r["side"] == "b" and r["mode"] != "haproxy":
            counted[r["mode"]].append(r["b_counted"])

    def mean(xs):
        return sum(xs) / len(xs) if xs else 0.0

    summary = {}
    for m in modes:
        reps = sorted(tot[m])
        a = [tot[m][x].get("a", 0) for x in reps]
        b = [tot[m][x].get("b", 0) for x in reps]
        ab = [x + y for x, y in zip(a, b)]
        spread = (max(ab) - min(ab)) / min(ab) * 100 if ab and min(ab) else 0.0
        summary[m] = {"a": mean(a), "b": mean(b), "ab": mean(ab), "ab_reps": ab, "spread_pct": spread,
                      "b_counted": counted.get(m, [])}
    h = summary.get("haproxy", {}).get("ab")

    print(f"\n### Instructions per request (callgrind, N={n} at c={c} after {warmup} warm-up requests, "
          f"mean of {max(len(tot[m]) for m in modes)} reps)\n")
    print("| mode | A (client side) | B (server side) | A+B | A+B vs HAProxy | A+B per rep (spread) | B counted (mTLS, A's id) |")
    print("|---|---|---|---|---|---|---|")
    for m in modes:
        s = summary[m]
        ratio = f"{s['ab'] / h:.2f}x" if h else "-"
        s["vs_haproxy"] = s["ab"] / h if h else None
        reps = " / ".join(fmt(x) for x in s["ab_reps"])
        bc = ", ".join(str(x) for x in s["b_counted"]) or "-"
        print(f"| {m} | {fmt(s['a'])} | {fmt(s['b'])} | {fmt(s['ab'])} | {ratio} | {reps} ({s['spread_pct']:.2f}%) | {bc} |")

    print(f"\n### Where the instructions go (self cost per request, A+B (A / B), mean over reps)\n")
    print("| category | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    breakdown = {}
    for k in ORDER:
        row = []
        for m in modes:
            a = mean(cats[m][("a", k)])
            b = mean(cats[m][("b", k)])
            breakdown.setdefault(m, {})[k] = {"a": a, "b": b}
            share = (a + b) / summary[m]["ab"] * 100 if summary[m]["ab"] else 0
            row.append(f"{fmt(a + b)} ({fmt(a)} / {fmt(b)}) {share:.0f}%")
        print(f"| {LABELS[k]} | " + " | ".join(row) + " |")
    print("| **total** | " + " | ".join(f"**{fmt(summary[m]['ab'])}**" for m in modes) + " |")

    sys_tab = defaultdict(lambda: defaultdict(float))
    for r in st:
        for name, v in r["per_request"].items():
            sys_tab[name][r["mode"]] += v
            sys_tab[name][r["mode"] + ":" + r["side"]] += v
    if st:
        smodes = [m for m in modes if any(r["mode"] == m for r in st)]
        names = sorted(sys_tab, key=lambda x: -max(sys_tab[x][m] for m in smodes))
        print(f"\n### Syscalls per request (strace -c -f on both proxies over {n} requests at c={c}; A+B (A / B); timing-dependent)\n")
        print("| syscall | " + " | ".join(smodes) + " |")
        print("|---|" + "---|" * len(smodes))
        for name in names:
            if max(sys_tab[name][m] for m in smodes) < 0.01:
                continue
            print(f"| {name} | " + " | ".join(
                f"{sys_tab[name][m]:.2f} ({sys_tab[name][m + ':a']:.2f} / {sys_tab[name][m + ':b']:.2f})" for m in smodes) + " |")
        print("| **total** | " + " | ".join(
            f"**{sum(sys_tab[x][m] for x in sys_tab):.2f}**" for m in smodes) + " |")

    for m in modes:
        for side in ("a", "b"):
            first = next((r for r in cg if r["mode"] == m and r["side"] == side), None)
            if not first:
                continue
            print(f"\n#### {m} {side.upper()}: top symbols by self cost (rep {first['rep']}, instructions per request)\n")
            print("| Ir/req | category | symbol [object] |")
            print("|---|---|---|")
            for t in first["top"][:20]:
                print(f"| {fmt(t['ir_per_request'])} | {t['category']} | `{t['symbol'][:150]}` |")

    out = {"n": n, "c": c, "warmup": warmup, "summary": summary, "breakdown": breakdown,
           "syscalls": {k: dict(v) for k, v in sys_tab.items()}, "records": recs}
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
    line = "; ".join(f"{m} {fmt(summary[m]['ab'])} Ir/req A+B"
                     + (f" ({summary[m]['vs_haproxy']:.2f}x HAProxy)" if summary[m].get("vs_haproxy") else "")
                     for m in modes)
    print(f"\nsummary: {line}; JSON: {out_path}")


if __name__ == "__main__":
    main()
