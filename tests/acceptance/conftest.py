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
* `knock`: the same runner for ``allowlist-knock`` from ``$ALLOWLIST_KNOCK_DIR``
  (default ``<repo>/target/debug``).
* `publisher`: a `PublisherRunner` for ``allowlist-publisher`` from
  ``$ALLOWLIST_PUBLISHER_DIR`` (default ``<repo>/target/debug``), with a
  hermetic environment (PATH, a HOME of its own, AWS pointed at the emulator);
  ``.run(...)`` is bounded by `PUBLISHER_TIMEOUT`, ``.start(...)`` runs it in
  the background and every process it started is killed when the test ends.

Tests may run in parallel (pytest-xdist; ``scripts/test`` runs ``-n 2``):
each worker has its own emulator, `my_ip` server and tmp dirs. What workers
share is the venv's Terraform launchers and the binaries in ``target/debug``,
and ``scripts/quickstart`` rewrites the launchers (``scripts/testbed-setup``)
and, like ``scripts/release``, may relink the binaries (``cargo build``). So:

* `tools_lock` (autouse): every test holds the `TOOLS` lock shared for its
  whole run, or exclusively when marked ``@pytest.mark.exclusive`` (the
  quickstart test); a fixture that runs such a script (``release``) holds it
  exclusively meanwhile with ``with TOOLS.exclusive():``. Holding it for the
  whole test keeps lock waits out of the tests' own timing.

And one helper for writing Terraform configurations:

* `config(body, *lines, **attrs)`: a whole ``main.tf``: the ``terraform {
  required_providers }`` block naming ``allowlist/allowlist``, the
  ``provider "allowlist"`` block, then `body` (HCL text, as is). Each keyword
  argument is one provider attribute written as HCL (``str`` quoted, ``list``
  as a JSON list, ``bool`` as ``true``/``false``, numbers as they are), e.g.
  ``config(body, ip_lookup_url=my_ip.url, egress_regions=["us-west-2"])``
  gives ``ip_lookup_url = "http://..."`` and ``egress_regions = ["us-west-2"]``;
  each positional argument after `body` is a raw HCL line for the provider
  block (``'max_ttl = "24h"'``; empty ones are left out), for tests whose
  tables hold provider settings as text. No attributes: ``provider "allowlist" {}``.

Run ``scripts/testbed-setup`` first; it makes the venv these paths point at.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from testbed.seed import Emulator, without_aws_env

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ALLOWLIST_VENV", REPO / ".venv"))
PROVIDER_DIR = Path(os.environ.get("ALLOWLIST_PROVIDER_DIR", REPO / "target" / "debug"))
PUBLISHER_DIR = Path(os.environ.get("ALLOWLIST_PUBLISHER_DIR", REPO / "target" / "debug"))
KNOCK_DIR = Path(os.environ.get("ALLOWLIST_KNOCK_DIR", REPO / "target" / "debug"))
TERRAFORM_VERSIONS = ["1.0.3", "1.15.5"]
RUN_TIMEOUT = 300  # seconds for one terraform command
READY_TIMEOUT = 30  # seconds for the emulator to start serving
PUBLISHER_TIMEOUT = 90  # seconds for one allowlist-publisher command


@contextmanager
def flocked(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Hold an flock on `path` (created if missing) meanwhile."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class ToolsLock:
    """A readers-writer lock between the pytest processes of a checkout (the
    xdist workers of one run, and other runs), on two lock files. A waiting
    writer holds the gate, so readers that come later queue behind it instead
    of starving it."""

    def __init__(self, stem: Path):
        self.gate = stem.with_name(stem.name + ".gate")
        self.lock = stem.with_name(stem.name + ".lock")

    @contextmanager
    def _held(self, mode: int) -> Iterator[None]:
        fds = [os.open(path, os.O_RDWR | os.O_CREAT, 0o666) for path in (self.gate, self.lock)]
        try:
            fcntl.flock(fds[0], fcntl.LOCK_EX)
            fcntl.flock(fds[1], mode)
            if mode == fcntl.LOCK_SH:
                os.close(fds.pop(0))  # a reader lets the next one through the gate at once
            yield
        finally:
            for fd in fds:
                os.close(fd)  # closing releases its lock

    def shared(self) -> Any:
        """While a test uses the tools (every test but the `exclusive` ones)."""
        return self._held(fcntl.LOCK_SH)

    def exclusive(self) -> Any:
        """While a test runs a script that rewrites them: no other test runs."""
        return self._held(fcntl.LOCK_EX)


TOOLS = ToolsLock(Path(tempfile.gettempdir()) / f"allowlist-tests-{hashlib.sha256(bytes(REPO)).hexdigest()[:12]}")


@pytest.fixture(autouse=True)
def tools_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test holds `TOOLS` shared for its whole run (so no wait can fall
    inside its timing), a test marked ``exclusive`` holds it exclusively."""
    with TOOLS.exclusive() if request.node.get_closest_marker("exclusive") else TOOLS.shared():
        yield


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

    def start(self, *args: str, output: Any = subprocess.PIPE) -> subprocess.Popen:
        """``terraform ARGS`` started in the work dir, in a session of its own (so that
        `kill_group` also ends its provider plugins); stdout and stderr go to `output`."""
        return subprocess.Popen(
            [str(self.binary), *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            text=True,
            start_new_session=True,
        )

    def run(self, *args: str, check: bool = True, timeout: float = RUN_TIMEOUT) -> RunResult:
        """``terraform ARGS`` in the work dir; with `check`, anything but rc 0 raises."""
        process = self.start(*args)
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


PROVIDER_SOURCE = """\
terraform {
  required_providers {
    allowlist = { source = "allowlist/allowlist" }
  }
}
"""


def hcl_value(value: Any) -> str:
    """A Python value as an HCL literal: plain strings (no ``${``), lists of them, bools, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list, int, float)):
        text = json.dumps(value)
        assert "${" not in text and "%{" not in text, f"not a plain HCL literal: {text}"
        return text
    raise TypeError(f"no HCL literal for {value!r}")


def config(body: str = "", *lines: str, **attrs: Any) -> str:
    """A whole ``main.tf``: the provider source, ``provider "allowlist"`` with
    `attrs` (keyword = HCL attribute) and the raw `lines`, then `body`."""
    settings = [f"{name} = {hcl_value(value)}" for name, value in attrs.items()]
    settings += [line.strip() for line in lines if line.strip()]
    if settings:
        provider = 'provider "allowlist" {\n' + "".join(f"  {s}\n" for s in settings) + "}\n"
    else:
        provider = 'provider "allowlist" {}\n'
    return f"\n{PROVIDER_SOURCE}\n{provider}\n{body}"


class MyIpServer:
    """A loopback stand-in for checkip.amazonaws.com: answers every GET with
    `.ip` (settable) as plain text, and counts the requests. `.on_get`, if set,
    is called with each request's path before the answer (a test's look at the
    world at the moment Terraform asks)."""

    def __init__(self) -> None:
        import http.server
        import threading

        owner = self
        self.ip = "198.51.100.77"
        self.hits = 0
        self.on_get: Any = None

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                owner.hits += 1
                if owner.on_get is not None:
                    owner.on_get(self.path)
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
    my_ip_server.on_get = None
    return my_ip_server


class PublisherProcess:
    """An ``allowlist-publisher`` started in the background. stdout and stderr
    go to files, so they can be read while it runs without filling a pipe."""

    def __init__(self, args: tuple[str, ...], popen: subprocess.Popen, stdout: Path, stderr: Path):
        self.args = args
        self.popen = popen
        self.stdout_path = stdout
        self.stderr_path = stderr

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def poll(self) -> int | None:
        return self.popen.poll()

    def signal(self, signum: int) -> None:
        """Send `signum` to the publisher itself (not its group)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> RunResult:
        """Wait at most `timeout` seconds for it to exit; on a timeout it is killed
        and an AssertionError carries its output."""
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"allowlist-publisher {' '.join(self.args)} still running after {timeout}s\n"
                f"--- stderr ---\n{self.stderr()}"
            ) from None
        return RunResult(self.args, self.popen.returncode, self.stdout(), self.stderr())

    def kill(self) -> None:
        kill_group(self.popen)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class PublisherRunner:
    """Runs ``allowlist-publisher`` against the emulator with a hermetic environment."""

    def __init__(self, binary: Path, workdir: Path, env: dict[str, str]):
        self.binary = binary
        self.workdir = workdir
        self.env = env
        self.started: list[PublisherProcess] = []

    def environment(self, extra: dict[str, str | None] | None = None) -> dict[str, str]:
        """The base environment plus `extra`; a None value removes that variable."""
        env = dict(self.env)
        for name, value in (extra or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def run(
        self,
        *args: str,
        env: dict[str, str | None] | None = None,
        timeout: float = PUBLISHER_TIMEOUT,
    ) -> RunResult:
        """``allowlist-publisher ARGS`` to completion; killed (and the test failed) after `timeout`."""
        process = subprocess.Popen(
            [str(self.binary), *args],
            cwd=self.workdir,
            env=self.environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"allowlist-publisher {' '.join(args)} timed out after {timeout}s\n"
                f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            ) from None
        finally:
            kill_group(process)
        return RunResult(args, process.returncode, stdout, stderr)

    def start(self, *args: str, env: dict[str, str | None] | None = None) -> PublisherProcess:
        """Start ``allowlist-publisher ARGS`` in the background; the fixture kills it at the end."""
        n = len(self.started)
        stdout = self.workdir / f"background-{n}.stdout"
        stderr = self.workdir / f"background-{n}.stderr"
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            popen = subprocess.Popen(
                [str(self.binary), *args],
                cwd=self.workdir,
                env=self.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        process = PublisherProcess(args, popen, stdout, stderr)
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()


def publisher_env(home: Path, endpoint: str) -> dict[str, str]:
    """The process environment of every publisher run: nothing inherited but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def binary_runner(binary: Path, tmp_path: Path, emulator: Emulator, name: str) -> Iterator[PublisherRunner]:
    """A runner for one of our binaries (the publisher, the knock service) with the publisher's
    hermetic environment, in work dir `tmp_path/name`; every process it started is killed when
    the test ends."""
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it first (cargo build)")
    home = tmp_path / f"{name}-home"
    home.mkdir()
    workdir = tmp_path / name
    workdir.mkdir()
    runner = PublisherRunner(binary, workdir, publisher_env(home, emulator.url))
    try:
        yield runner
    finally:
        runner.kill_all()


@pytest.fixture
def publisher(tmp_path: Path, emulator: Emulator) -> Iterator[PublisherRunner]:
    yield from binary_runner(PUBLISHER_DIR / "allowlist-publisher", tmp_path, emulator, "publisher")


@pytest.fixture
def knock(tmp_path: Path, emulator: Emulator) -> Iterator[PublisherRunner]:
    yield from binary_runner(KNOCK_DIR / "allowlist-knock", tmp_path, emulator, "knock")
