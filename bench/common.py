"""Shared helpers of the benchmarks in bench/: paths, the plugin handshake environment, statistics,
result files, and clean shutdown.

Run the benchmarks with the test bed's Python (``.venv/bin/python``, made by
``scripts/testbed-setup``): they need ``cryptography`` (the client certificate) and ``boto3`` (the
emulator seed, via ``testbed/seed.py``).

Rules every benchmark here follows:
* Only 127.0.0.1 is ever contacted (the emulator; providers' own loopback listeners).
* Every process a benchmark starts is remembered by PID and stopped by PID (or by the process
  group it created with ``start_new_session``); nothing is killed by name or pattern.
* SIGTERM/SIGINT/SIGHUP turn into ``SystemExit`` so ``finally`` blocks stop the emulator.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = Path(os.environ.get("BENCH_RESULTS", BENCH / "results"))
VENV = Path(os.environ.get("ALLOWLIST_VENV", ROOT / ".venv"))
PYTHON = VENV / "bin" / "python"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target" / "bench"))
PROVIDER = TARGET / "release" / "terraform-provider-allowlist"
LOOKUP_EXAMPLE = TARGET / "release" / "examples" / "lookup"
NULL_PROVIDER = VENV / "lib" / "terraform-provider-null_v2.1.2_x4"
TERRAFORMS = {"1.0.3": VENV / "bin" / "terraform-1.0.3", "1.15.5": VENV / "bin" / "terraform-1.15.5"}

MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"

# The 17 regions the emulator (moto 5.2.5 + testbed/emulator.py) serves; the others answer
# AuthFailure (not enabled for the account).
REGIONS = [
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2",
    "ap-south-1", "sa-east-1",
]

sys.path.insert(0, str(ROOT / "testbed"))


def exit_on_signals() -> None:
    """Make SIGTERM/SIGHUP (e.g. from `timeout`) and SIGINT unwind through `finally` blocks."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, handler)


def budget(script: str, seconds: float) -> None:
    """Stop `script` (its name in the message) with exit 128+SIGALRM once `seconds` have
    passed, unwinding through `finally` blocks; `signal.alarm(0)` cancels it."""

    def over_budget(signum: int, _frame: Any) -> None:
        print(f"{script}: over the budget of {seconds:.0f}s, stopping", file=sys.stderr)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, over_budget)
    signal.alarm(int(seconds))


def drop_aws_env() -> None:
    """Hermetic: no inherited AWS_* in this process either (boto3 seed clients)."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]


def client_cert_pem() -> str:
    """A one-time self-signed ECDSA P-521 CA certificate, like the one Terraform (go-plugin
    AutoMTLS) puts in PLUGIN_CLIENT_CERT."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(hours=262980))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=True, key_cert_sign=True, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA512())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without AWS_* and TF_* (an inherited profile, region, endpoint, CLI config or
    plugin cache must not leak in), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_", "PLUGIN_"))}
    env.update(extra or {})
    return env


def ms(ns: int) -> float:
    return ns / 1e6


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    data = sorted(values)
    if not data:
        raise ValueError("empty sample")
    rank = max(1, -(-len(data) * p // 100))  # ceil(n * p / 100), at least 1
    return data[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "p90": percentile(values, 90),
        "max": max(values),
    }


def machine() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
    }


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(name: str, data: dict[str, Any], markdown: str) -> None:
    """bench/results/<name>.json and <name>.md (written via .tmp, then renamed)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(data, indent=2) + "\n"), (".md", markdown)):
        tmp = RESULTS / f"{name}{suffix}.tmp"
        tmp.write_text(text)
        tmp.replace(RESULTS / f"{name}{suffix}")
    sys.stdout.write(markdown)
    sys.stdout.flush()


def stop_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop a process this benchmark started with start_new_session=True, and its group (its
    own descendants): SIGTERM, then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    except ProcessLookupError:
        process.wait(timeout=grace)


def require(path: Path, hint: str) -> None:
    if not path.exists():
        raise SystemExit(f"{path} is missing: {hint}")
