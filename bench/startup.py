"""Startup benchmark: time from exec to the go-plugin handshake line on stdout.

For our release provider (target/bench/release/terraform-provider-allowlist) and, for scale, the
Go `terraform-provider-null` 2.1.2 from the test bed. Each provider is started the way Terraform
starts it (no arguments, stdin from /dev/null, the magic cookie, a PEM client certificate in
PLUGIN_CLIENT_CERT, PLUGIN_PROTOCOL_VERSIONS "5,6" for ours, "5" for null); the clock runs from
just before spawn until the first newline arrives on the stdout pipe. The process is then killed
(SIGKILL, by PID) and reaped. 3 warm-ups, then N=30 timed runs each, interleaved
(ours, null, ours, ...) so drift on a busy machine hits both alike.

Also reports the size of both binaries.

    .venv/bin/python bench/startup.py [--runs 30] [--warmup 3]

Writes bench/results/startup.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import common


def first_line(process: subprocess.Popen, timeout: float) -> bytes:
    """Bytes of stdout up to and including the first newline (raw reads, no buffering)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no handshake line after {timeout}s (got {data!r})")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"stdout closed before the handshake line (got {data!r})")
            data += chunk
    return data


def one_run(binary: Path, env: dict[str, str], timeout: float = 30.0) -> tuple[float, str]:
    """Milliseconds from spawn to the handshake line, and the line."""
    start = time.perf_counter_ns()
    process = subprocess.Popen(
        [str(binary)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    try:
        line = first_line(process, timeout)
        elapsed = common.ms(time.perf_counter_ns() - start)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
    return elapsed, line.decode(errors="replace").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    common.exit_on_signals()
    common.require(common.PROVIDER, "build it: CARGO_TARGET_DIR=target/bench cargo build --release -p terraform-provider-allowlist")
    common.require(common.NULL_PROVIDER, "run scripts/testbed-setup")

    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        # go-plugin servers put their unix socket in TMPDIR; a SIGKILLed server leaves it behind,
        # so give them a directory of ours that is removed at the end.
        cert = common.client_cert_pem()
        base = common.clean_env({
            "TF_PLUGIN_MAGIC_COOKIE": common.MAGIC_COOKIE,
            "PLUGIN_CLIENT_CERT": cert,
            "PLUGIN_MIN_PORT": "10000",
            "PLUGIN_MAX_PORT": "25000",
            "TMPDIR": str(scratch),
        })
        subjects = {
            "allowlist (Rust, release)": (common.PROVIDER, {**base, "PLUGIN_PROTOCOL_VERSIONS": "5,6"}, "1|6|tcp|127.0.0.1:"),
            "null 2.1.2 (Go)": (common.NULL_PROVIDER, {**base, "PLUGIN_PROTOCOL_VERSIONS": "5"}, "1|5|"),
        }
        times: dict[str, list[float]] = {name: [] for name in subjects}
        lines: dict[str, str] = {}
        for i in range(args.warmup + args.runs):
            for name, (binary, env, prefix) in subjects.items():
                elapsed, line = one_run(binary, env)
                if not line.startswith(prefix):
                    raise SystemExit(f"{name}: unexpected handshake line {line!r} (want {prefix}...)")
                lines[name] = line
                if i >= args.warmup:
                    times[name].append(elapsed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    sizes = {"allowlist (Rust, release)": common.PROVIDER.stat().st_size,
             "null 2.1.2 (Go)": common.NULL_PROVIDER.stat().st_size}
    stats = {name: common.summary(v) for name, v in times.items()}
    rows = [
        [name, f"{s['min']:.1f}", f"{s['median']:.1f}", f"{s['p90']:.1f}", f"{s['max']:.1f}",
         f"{sizes[name] / 1e6:.1f}", "`" + lines[name].split("|grpc|")[0].replace("|", "\\|") + "\\|grpc\\|…`"]
        for name, s in stats.items()
    ]
    markdown = (
        f"### Startup: exec → handshake line (N={args.runs} after {args.warmup} warm-ups)\n\n"
        + common.md_table(["provider", "min ms", "median ms", "p90 ms", "max ms", "binary MB", "handshake line"], rows)
    )
    common.write_results(
        "startup",
        {"machine": common.machine(), "runs": args.runs, "warmup": args.warmup, "times_ms": times,
         "stats_ms": stats, "binary_bytes": sizes,
         "binary_paths": {"allowlist (Rust, release)": str(common.PROVIDER), "null 2.1.2 (Go)": str(common.NULL_PROVIDER)}},
        markdown,
    )


if __name__ == "__main__":
    main()
