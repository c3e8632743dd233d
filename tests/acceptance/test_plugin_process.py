"""How the provider process behaves under real Terraform, beyond any one data
source: clean shutdown (no go-plugin 2 s kill per process), logs that
Terraform parses as hclog JSON at the right level, and no credential in logs."""

from __future__ import annotations

from conftest import config

CONFIG = config("""\
data "allowlist_egress_ips" "p" {
  regions = ["us-west-2"]
}
output "cidrs" { value = data.allowlist_egress_ips.p.cidrs }
""")

SECRET = "s3cr3t-Must-Never-Appear-In-Logs"


def test_provider_exits_cleanly_and_logs_hclog_json(terraform, emulator):
    emulator.seed.nat_gateway("us-west-2", {"Name": "proxy"}, ips=["198.18.0.1"])
    terraform.write("main.tf", CONFIG)
    terraform.env = {**terraform.env, "TF_LOG": "trace", "AWS_SECRET_ACCESS_KEY": SECRET}

    result = terraform.apply()
    log = result.stderr

    # Every provider process was shut down through GRPCController.Shutdown:
    # go-plugin logs this warning when it has to wait 2 s and kill instead.
    assert "plugin failed to exit gracefully" not in log
    assert "plugin exited" in log

    # Our JSON lines were parsed by go-plugin (level and module recognised),
    # not passed through raw.
    assert "provider.terraform-provider-allowlist: provider configured:" in log
    assert "@module=allowlist.provider" in log
    assert '"@message"' not in log

    # Credentials never reach the log, even at trace level.
    assert SECRET not in log
    assert SECRET not in result.stdout


def test_provider_logs_respect_tf_log_provider(terraform, emulator):
    terraform.write("main.tf", CONFIG)
    terraform.env = {**terraform.env, "TF_LOG": "trace", "TF_LOG_PROVIDER": "warn"}
    log = terraform.apply().stderr
    assert "provider configured" not in log, "INFO lines are filtered at WARN"
