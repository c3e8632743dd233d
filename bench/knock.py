"""allowlist-knock: request latency without AWS, Lambda cold start, peak RSS.

* Latency: `allowlist-knock serve` on 127.0.0.1 (rate limits off), one keep-alive HTTP/1.1
  connection, N requests per case after warm-ups, each timed from send to the whole response.
  Cases that never reach AWS, so the number is the service's own: a wrong API key (401: hash +
  constant-time compare), a valid RS256 token and a valid ES256 token for a door their claims do
  not open (403: full JWT verification with the JWKS cache warm, claim matching, policy), and
  GET /healthz. The emulator is not involved (the doors' groups are never read).
* Cold start: the binary started as on Lambda (no arguments, AWS_LAMBDA_RUNTIME_API pointing at a
  loopback stand-in of the Runtime API that hands out one function-URL event); timed from just
  before spawn to the moment the response is POSTed back. The event is a 401 (no AWS call), so
  this is process start + config load + SDK config load + runtime loop + handler.
* Peak RSS: the kernel's high-water mark of the process's own resident set (VmHWM in
  /proc/<pid>/status), read just before SIGTERM: of the serve process after the latency runs and
  of each Lambda process after its answer. (Not ru_maxrss from wait4 after a Popen: that keeps the
  peak from before exec, i.e. this Python process's.)

Only 127.0.0.1 is contacted; every process started is stopped by PID.

    .venv/bin/python bench/knock.py --binary target/release/allowlist-knock
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "acceptance"))

import common  # noqa: E402
from test_knock import AUDIENCE, FakeRuntime, IdentityProvider, function_url_event  # noqa: E402

DOORS = """
[doors.bastion]
region             = "us-east-1"
security_group_ids = ["sg-0123456789abcdef0"]
ports              = [22]
allow_claims       = { email = "*@example.com" }
allow_keys         = ["contractor-a"]
"""


def write_config(workdir: Path) -> None:
    (workdir / "doors.toml").write_text(DOORS)
    digest = hashlib.sha256(b"the-right-key").hexdigest()
    (workdir / "keys.toml").write_text(f'contractor-a = "sha256:{digest}"\n')


def env_for(workdir: Path, idp: IdentityProvider, extra: dict[str, str]) -> dict[str, str]:
    return common.clean_env({
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "ALLOWLIST_KNOCK_CONFIG": str(workdir / "doors.toml"),
        "ALLOWLIST_KNOCK_API_KEYS": str(workdir / "keys.toml"),
        "ALLOWLIST_KNOCK_OIDC_ISSUER": idp.issuer, "ALLOWLIST_KNOCK_OIDC_AUDIENCE": AUDIENCE,
        "ALLOWLIST_KNOCK_LOG_LEVEL": "warn", **extra,
    })


def stop_and_rss_kib(process: subprocess.Popen) -> int:
    """The process's own peak RSS (VmHWM, KiB), read while it still runs; then SIGTERM and reap
    it (SIGKILL after 10 s)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))
    except (OSError, AttributeError) as e:
        raise SystemExit(f"cannot read the peak RSS of {process.pid} (it ended early?): {e}")
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    return peak


def latency(binary: Path, workdir: Path, idp: IdentityProvider, n: int, warmup: int) -> tuple[dict, int]:
    stderr = open(workdir / "serve.stderr", "w+")
    process = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--rate-per-ip", "0", "--rate-per-principal", "0",
         "--log-level", "info"],
        env=env_for(workdir, idp, {}), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
    )
    try:
        port = None
        deadline = time.monotonic() + 15
        while port is None and time.monotonic() < deadline:
            stderr.seek(0)
            found = re.search(r"listening addr=127\.0\.0\.1:(\d+)", stderr.read())
            port = int(found.group(1)) if found else None
            time.sleep(0.01)
        if port is None:
            raise SystemExit("serve did not start")
        outsider = {"email": "eve@example.org"}
        cases = {
            "401 wrong API key": ("POST", {"X-Api-Key": "a-wrong-key"}),
            "403 RS256 token, warm JWKS": ("POST", {"Authorization": "Bearer " + idp.token("eve", **outsider)}),
            "403 ES256 token, warm JWKS": ("POST", {"Authorization": "Bearer " + idp.token("eve", alg="ES256", **outsider)}),
            "200 GET /healthz": ("GET", {}),
        }
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        results = {}
        for name, (method, headers) in cases.items():
            path = "/healthz" if method == "GET" else "/v1/doors/bastion/knock"
            samples = []
            for i in range(warmup + n):
                start = time.perf_counter_ns()
                conn.request(method, path, body=b"" if method == "POST" else None, headers=headers)
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter_ns() - start
                expected = int(name[:3])
                if response.status != expected:
                    raise SystemExit(f"{name}: HTTP {response.status}")
                if i >= warmup:
                    samples.append(common.ms(elapsed))
            results[name] = {"p50": common.percentile(samples, 50), "p99": common.percentile(samples, 99),
                             "max": max(samples), "n": len(samples)}
        conn.close()
    finally:
        rss = stop_and_rss_kib(process)
        stderr.close()
    return results, rss


def cold_start(binary: Path, workdir: Path, idp: IdentityProvider, runs: int) -> tuple[list[float], list[int]]:
    times, rss = [], []
    event = function_url_event("POST", "/v1/doors/bastion/knock", {"x-api-key": "a-wrong-key"}, "198.51.100.9")
    for _ in range(runs):
        runtime = FakeRuntime([event])
        try:
            start = time.perf_counter_ns()
            process = subprocess.Popen(
                [str(binary)], env=env_for(workdir, idp, {"AWS_LAMBDA_RUNTIME_API": runtime.address}),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 15
            while not runtime.responses and time.monotonic() < deadline:
                time.sleep(0.0005)
            elapsed = time.perf_counter_ns() - start
            if not runtime.responses or runtime.responses[0][1].get("statusCode") != 401:
                raise SystemExit(f"no 401 from the Lambda path: {runtime.responses}")
            times.append(common.ms(elapsed))
            rss.append(stop_and_rss_kib(process))
        finally:
            runtime.stop()
    return times, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=common.TARGET / "release" / "allowlist-knock")
    parser.add_argument("-n", type=int, default=1000, help="requests per latency case")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=20)
    args = parser.parse_args()
    common.require(args.binary, "build it: cargo build --release -p allowlist-knock")
    common.exit_on_signals()
    idp = IdentityProvider()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            write_config(workdir)
            lat, serve_rss = latency(args.binary, workdir, idp, args.n, args.warmup)
            cold, lambda_rss = cold_start(args.binary, workdir, idp, args.cold_runs)
    finally:
        idp.stop()
    rows = [[name, f"{r['p50']:.3f}", f"{r['p99']:.3f}", f"{r['max']:.3f}", r["n"]] for name, r in lat.items()]
    md = f"# allowlist-knock ({args.binary})\n\n"
    md += "Latency without AWS (ms, one keep-alive connection, loopback):\n\n"
    md += common.md_table(["case", "p50", "p99", "max", "n"], rows)
    md += f"\nLambda cold start, spawn → response posted to a loopback Runtime API (ms, {len(cold)} runs): "
    md += f"p50 {common.percentile(cold, 50):.1f}, p90 {common.percentile(cold, 90):.1f}, max {max(cold):.1f}\n\n"
    md += f"Peak RSS: serve after {sum(r['n'] for r in lat.values())} requests {serve_rss / 1024:.1f} MiB; "
    md += f"Lambda process max {max(lambda_rss) / 1024:.1f} MiB\n"
    data = {"machine": common.machine(), "binary": str(args.binary), "latency_ms": lat,
            "cold_start_ms": cold, "serve_rss_kib": serve_rss, "lambda_rss_kib": lambda_rss}
    common.write_results("knock", data, md)


if __name__ == "__main__":
    main()
