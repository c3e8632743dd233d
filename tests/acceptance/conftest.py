"""pytest fixtures for acceptance tests: the AWS emulator and real Terraform runs.

Owns how a test meets the outside world:

* `emulator` (session): ``testbed/emulator.py --port 0`` run by the venv's
  python; a `testbed.seed.Emulator` with ``.url``, ``.reset()``,
  ``.set_faults(rules)``, ``.clear_faults()``, ``.requests()``, ``.count(...)``,
  ``.client(service, region)`` and ``.seed`` (NAT gateways, security groups).
* `reset_emulator` (autouse): every test starts from an empty emulator.
* `terraform`: one run per Terraform version (ids ``tf1.0.3``, ``tf1.15.5``),
  a `TerraformRunner` over a fresh work dir with a hermetic environment: its
  own CLI config whose ``dev_overrides`` load ``terraform-provider-allowlist``
  from ``$ALLOWLIST_PROVIDER_DIR`` (default ``<repo>/target/debug``), AWS
  pointed at the emulator, nothing inherited from ``AWS_*`` / ``TF_*`` except
  ``TF_LOG*``. Every run is bounded by `RUN_TIMEOUT`.

Run ``scripts/testbed-setup`` first; it makes the venv these paths point at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from testbed.seed import Emulator, without_aws_env

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ALLOWLIST_VENV", REPO / ".venv"))
PROVIDER_DIR = Path(os.environ.get("ALLOWLIST_PROVIDER_DIR", REPO / "target" / "debug"))
TERRAFORM_VERSIONS = ["1.0.3", "1.15.5"]
RUN_TIMEOUT = 300  # seconds for one terraform command
READY_TIMEOUT = 30  # seconds for the emulator to start serving


def venv_python() -> str:
    python = VENV / "bin" / "python"
    return str(python) if python.exists() else sys.executable


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator for the whole session; its log is kept in the session tmp dir.
    The test process loses its AWS_* variables meanwhile (boto3 clients are hermetic)."""
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with pytest.MonkeyPatch.context() as patch:
        for name in set(os.environ) - set(without_aws_env()):
            patch.delenv(name)
        emu = Emulator.launch(venv_python(), log_path, timeout=READY_TIMEOUT)
        try:
            yield emu
        finally:
            emu.stop()


@pytest.fixture(autouse=True)
def reset_emulator(emulator: Emulator) -> None:
    """Empty AWS state, no faults, zero counters before each test."""
    emulator.reset()


@dataclass
class RunResult:
    """What one terraform command did."""

    args: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str


class TerraformError(AssertionError):
    """A terraform command ended with an exit code the test did not expect."""

    def __init__(self, version: str, result: RunResult, why: str):
        super().__init__(
            f"terraform {version} {' '.join(result.args)}: {why} (rc={result.rc})\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
        self.result = result


class TerraformRunner:
    """Runs one Terraform version in a work dir of its own."""

    def __init__(self, version: str, binary: Path, workdir: Path, env: dict[str, str]):
        self.version = version
        self.binary = binary
        self.workdir = workdir
        self.env = env
        self.last_wall = 0.0  # seconds the last run took

    def write(self, name: str, text: str) -> Path:
        """Write a file (dedented) into the work dir, e.g. ``main.tf``."""
        path = self.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, *args: str, check: bool = True, timeout: float = RUN_TIMEOUT) -> RunResult:
        """``terraform ARGS`` in the work dir; with `check`, anything but rc 0 raises."""
        process = subprocess.Popen(
            [str(self.binary), *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a timeout also kills provider plugins
        )
        start = time.monotonic()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            stdout, stderr = process.communicate()
            result = RunResult(args, process.returncode, stdout, stderr)
            raise TerraformError(self.version, result, f"timed out after {timeout}s") from None
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM turned into SystemExit): no terraform or provider
            # plugin may outlive the caller.
            kill_group(process)
            raise
        self.last_wall = time.monotonic() - start
        result = RunResult(args, process.returncode, stdout, stderr)
        if check and result.rc != 0:
            raise TerraformError(self.version, result, "failed")
        return result

    def apply(self, *args: str) -> RunResult:
        return self.run("apply", "-auto-approve", "-no-color", *args)

    def destroy(self, *args: str) -> RunResult:
        return self.run("destroy", "-auto-approve", "-no-color", *args)

    def plan_detailed(self, *args: str) -> int:
        """Exit code of ``plan -detailed-exitcode``: 0 no changes, 2 changes."""
        result = self.run("plan", "-detailed-exitcode", "-no-color", *args, check=False)
        if result.rc not in (0, 2):
            raise TerraformError(self.version, result, "plan failed")
        return result.rc

    def output(self) -> dict[str, Any]:
        """``output -json`` parsed: name -> {"value", "type", "sensitive"}."""
        return json.loads(self.run("output", "-json").stdout)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group of a terraform run (started with start_new_session)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cli_config(provider_dir: Path) -> str:
    """A CLI config loading our provider from `provider_dir` without a registry."""
    return textwrap.dedent(
        f"""\
        provider_installation {{
          dev_overrides {{
            "allowlist/allowlist" = {json.dumps(str(provider_dir))}
          }}
          direct {{}}
        }}
        """
    )


def terraform_env(cli_config_file: Path, endpoint: str) -> dict[str, str]:
    """The process environment of every terraform run."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TF_")) or k.startswith("TF_LOG")
    }
    env.update(
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        TF_INPUT="0",
        TF_CLI_CONFIG_FILE=str(cli_config_file),
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture(params=TERRAFORM_VERSIONS, ids=lambda v: f"tf{v}")
def terraform(request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator) -> TerraformRunner:
    version = request.param
    binary = VENV / "bin" / f"terraform-{version}"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run scripts/testbed-setup")
    config = tmp_path / "terraform.tfrc"
    config.write_text(cli_config(PROVIDER_DIR))
    workdir = tmp_path / "work"
    workdir.mkdir()
    return TerraformRunner(version, binary, workdir, terraform_env(config, emulator.url))


class MyIpServer:
    """A loopback stand-in for checkip.amazonaws.com: answers every GET with
    `.ip` (settable) as plain text, and counts the requests."""

    def __init__(self) -> None:
        import http.server
        import threading

        owner = self
        self.ip = "198.51.100.77"
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                owner.hits += 1
                body = (owner.ip + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def my_ip_server() -> Iterator[MyIpServer]:
    server = MyIpServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def my_ip(my_ip_server: MyIpServer) -> MyIpServer:
    """The IP lookup service, reset to its default answer for each test."""
    my_ip_server.ip = "198.51.100.77"
    my_ip_server.hits = 0
    return my_ip_server
