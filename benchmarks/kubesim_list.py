"""How fast kubesim builds and serves a big cluster, against what kubectl can consume.

    .venv/bin/python benchmarks/kubesim_list.py [--pods 150000] [--services 10000] [--limit 500]

Builds the cluster in-process (build time, RSS), serves it, then times, each in a separate
process so the GIL is the server's alone:
  * a raw HTTP client paging through /api/v1/pods with keep-alive, reading bytes unparsed
    (what the simulator can serve);
  * ``kubectl get pods -A --chunk-size=N -o json > /dev/null`` and the default table output
    (wall time and kubectl's own CPU time; kubectl also paces itself at 5 requests/s).
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CONTINUE = re.compile(rb'"continue":"([^"]+)"')


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size in MB."""
    status = Path("/proc/self/status").read_text()
    cur = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return cur / 1024, peak / 1024


def raw_client(url: str, limit: int) -> None:
    """Page through every pod; prints 'pages bytes seconds'."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port)
    token = None
    pages = total = 0
    t0 = time.perf_counter()
    while True:
        path = f"/api/v1/pods?limit={limit}" + (f"&continue={quote(token)}" if token else "")
        conn.request("GET", path, headers={"Accept": "application/json"})
        body = conn.getresponse().read()
        pages += 1
        total += len(body)
        m = _CONTINUE.search(body, 0, 1024)
        if not m:
            break
        token = m.group(1).decode()
    print(pages, total, time.perf_counter() - t0)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds the command used)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=150_000)
    ap.add_argument("--services", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--raw-client", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.raw_client:
        raw_client(args.raw_client, args.limit)
        return 0

    from navigator.kubesim import KubeSim

    base, _ = rss_mb()
    t0 = time.perf_counter()
    sim = KubeSim(pods=args.pods, services=args.services, namespaces=args.namespaces, seed=1)
    build = time.perf_counter() - t0
    cur, peak = rss_mb()
    counts = sim.generated.counts
    pod_rt = sim.resource("pods")
    pod_bytes = sum(len(e.body) for e in sim.store.bucket(pod_rt).entries.values())
    print(f"cluster: {counts}")
    print(f"build: {build:.2f} s   RSS: {cur:.0f} MB (peak {peak:.0f} MB, {base:.0f} MB before)   "
          f"pod JSON: {pod_bytes / 1e6:.0f} MB ({pod_bytes / max(1, counts['pods']):.0f} B/pod)")
    with sim, tempfile.TemporaryDirectory(prefix="kubesim-bench-") as home:
        # raw listing, twice (the first warms page cache/allocator), best of the two
        best = None
        for _ in range(2):
            out = subprocess.run([sys.executable, __file__, "--raw-client", sim.url, "--limit", str(args.limit)],
                                 capture_output=True, text=True, check=True).stdout.split()
            pages, total, secs = int(out[0]), int(out[1]), float(out[2])
            best = min(best or secs, secs)
        assert best is not None
        print(f"raw HTTP list (limit={args.limit}): {pages} pages, {total / 1e6:.0f} MB in {best:.2f} s = "
              f"{total / 1e6 / best:.0f} MB/s, {counts['pods'] / best:,.0f} pods/s")
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            print("kubectl: not installed, skipped")
            return 0
        env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig_path), "HOME": home,
               "KUBECACHEDIR": str(Path(home) / "cache")}
        subprocess.run([kubectl, "get", "--raw", "/version"], env=env, stdout=subprocess.DEVNULL, check=True)
        # client-go's default rate limiter (QPS 5, burst 10) paces kubectl's paging whatever the server does
        floor = max(0, pages - 10) / 5
        print(f"(kubectl's client-side throttling alone needs >= {floor:.0f} s for {pages} pages)")
        kj, kj_cpu = timed([kubectl, "get", "pods", "-A", f"--chunk-size={args.limit}", "-o", "json"], env)
        print(f"kubectl get pods -A --chunk-size={args.limit} -o json > /dev/null: {kj:.1f} s wall, "
              f"{kj_cpu:.1f} s kubectl CPU = {counts['pods'] / kj:,.0f} pods/s ({kj / best:.0f}x the raw listing)")
        kt, kt_cpu = timed([kubectl, "get", "pods", "-A", f"--chunk-size={args.limit}"], env)
        print(f"kubectl get pods -A --chunk-size={args.limit} (table) > /dev/null: {kt:.1f} s wall, "
              f"{kt_cpu:.1f} s kubectl CPU = {counts['pods'] / kt:,.0f} pods/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
