"""deploy.sh: static checks, real runs against the moto server, and its error paths.

The moto runs use the template as deployed to moto (conftest.py: resources moto cannot create
left out) and the aws CLI installed in this environment. moto's change-set support is partial:
it computes no stack outputs after executing a change set (so no URL is printed there),
it answers an unchanged template by refusing the change set, and it cannot apply in-place
updates to this stack. Which failed events deploy.sh prints, and that it never deletes a stack,
are checked with a stand-in `aws` command that plays CloudFormation's answers.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DEPLOY_SCRIPT = Path(__file__).resolve().parents[1] / "deploy.sh"
VENV_BIN = Path(sys.executable).parent


def run_deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY_SCRIPT), *args], env=env, capture_output=True, text=True, check=False, timeout=300
    )


def clean_environ() -> dict[str, str]:
    """This process's environment without AWS settings or any of deploy.sh's own variables."""
    own = {"ENDPOINT_URL", "STACK_NAME", "TEMPLATE_FILE", "TEMPLATE_BUCKET", "ENVIRONMENT_NAME", "CERTIFICATE_ARN"}
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and key not in own and not key.startswith("IMAGE_") and not key.endswith("_IMAGE")
    }


def physical_ids(cloudformation: Any, stack_name: str) -> dict[str, str]:
    summaries = cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    return {s["LogicalResourceId"]: s.get("PhysicalResourceId", "") for s in summaries if s.get("LogicalResourceId")}


@pytest.fixture
def moto_env(moto_endpoint: str, tmp_path: Path) -> dict[str, str]:
    """Environment for deploy.sh against the moto server: fake credentials, no user AWS config."""
    env = clean_environ()
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
    )
    return env


@pytest.fixture
def moto_template_file(moto_template: Any, tmp_path: Path) -> Path:
    path = tmp_path / "stack-for-moto.json"
    path.write_text(json.dumps(moto_template.body, separators=(",", ":")))
    return path


def test_deploy_script_is_valid_bash_and_shellcheck_clean() -> None:
    subprocess.run(["bash", "-n", str(DEPLOY_SCRIPT)], check=True, timeout=30)
    shellcheck = VENV_BIN / "shellcheck"
    result = subprocess.run(
        [str(shellcheck), str(DEPLOY_SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout
    assert os.access(DEPLOY_SCRIPT, os.X_OK)


def test_deploy_script_creates_the_stack_then_leaves_it_alone(
    moto_env: dict[str, str], moto_template_file: Path, aws: Callable[[str], Any]
) -> None:
    env = {
        **moto_env,
        "STACK_NAME": "pm-deploy-script",
        "TEMPLATE_FILE": str(moto_template_file),
        "ENVIRONMENT_NAME": "dev",
        "IMAGE_TAG": "v1",
    }
    first = run_deploy(env, "LogLevel=DEBUG", "PatientServiceDesiredCount=2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Successfully created/updated stack - pm-deploy-script" in first.stdout
    assert "Gateway URL:" in first.stdout
    cloudformation = aws("cloudformation")
    (stack,) = cloudformation.describe_stacks(StackName="pm-deploy-script")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert parameters["EnvironmentName"] == "dev"
    assert parameters["LogLevel"] == "DEBUG"
    assert parameters["PatientServiceImage"] == "patient-management/patient-service:v1"
    # The overrides reached the resources: a dev task definition with the v1 image.
    task_arn = physical_ids(cloudformation, "pm-deploy-script")["PatientServiceTaskDefinition"]
    (definition,) = aws("ecs").describe_task_definition(taskDefinition=task_arn)["taskDefinition"][
        "containerDefinitions"
    ]
    assert definition["image"] == "patient-management/patient-service:v1"
    env_vars = {entry["name"]: entry["value"] for entry in definition["environment"]}
    assert (env_vars["ENVIRONMENT"], env_vars["SEED_DEMO_DATA"], env_vars["LOG_LEVEL"]) == ("dev", "true", "DEBUG")
    resources = physical_ids(cloudformation, "pm-deploy-script")
    # ... and the ECS services: two patient-service tasks, the others at the default of one.
    names = ("PatientService", "AnalyticsService")
    services = aws("ecs").describe_services(cluster=resources["Cluster"], services=[resources[n] for n in names])
    counts = {service["serviceArn"]: service["desiredCount"] for service in services["services"]}
    assert counts == {resources["PatientService"]: 2, resources["AnalyticsService"]: 1}

    # The repeat leaves PatientServiceDesiredCount to the CLI's UsePreviousValue: moto counts any
    # overridden Number parameter as a change on every run (LogRetentionDays=30 alike), AWS does not.
    second = run_deploy(env, "LogLevel=DEBUG")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No changes: stack pm-deploy-script is up to date." in second.stdout
    (again,) = cloudformation.describe_stacks(StackName="pm-deploy-script")["Stacks"]
    assert again["StackId"] == stack["StackId"], "the stack was not replaced"
    assert physical_ids(cloudformation, "pm-deploy-script") == resources, "no resource was replaced"


@pytest.mark.filterwarnings("ignore:Exception\\(InvalidVPCIdError\\):UserWarning")  # moto's own error mapping
def test_deploy_script_fails_with_the_cause_and_keeps_the_stack(
    moto_env: dict[str, str], moto_template: Any, tmp_path: Path, aws: Callable[[str], Any]
) -> None:
    broken = json.loads(json.dumps(moto_template.body))
    broken["Resources"]["Stray"] = {
        "Type": "AWS::EC2::Subnet",
        "Properties": {"VpcId": "vpc-0000000000000dead", "CidrBlock": "10.0.99.0/24"},
    }
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken, separators=(",", ":")))
    result = run_deploy({**moto_env, "STACK_NAME": "pm-deploy-broken", "TEMPLATE_FILE": str(path)})
    assert result.returncode == 1
    assert "vpc-0000000000000dead does not exist" in result.stderr
    assert "Failed events of stack pm-deploy-broken in this deployment" in result.stderr
    assert "Gateway URL" not in result.stdout
    # Nothing was deleted: the (failed) stack is still there for the operator to inspect.
    assert aws("cloudformation").describe_stacks(StackName="pm-deploy-broken")["Stacks"]


# --- with a stand-in `aws` command --------------------------------------------------------------

FAKE_AWS = r"""#!/usr/bin/env bash
# Plays the CloudFormation answers a test chose; records every call.
printf '%s\n' "$*" >> "$FAKE_AWS_LOG"
case " $* " in
  *" sts get-caller-identity "*) echo '{"Account": "123456789012"}' ;;
  *" describe-stacks "*"StackStatus"*)
    if [[ -n "${FAKE_STACK_STATUS:-}" ]]; then echo "$FAKE_STACK_STATUS"; else
      echo "An error occurred (ValidationError): Stack with id x does not exist" >&2; exit 254; fi ;;
  *" describe-stack-events "*"--max-items 1 "*) printf 'evt-before\nNEXTTOKEN\tabc\n' ;;
  *" describe-stack-events "*) cat "$FAKE_EVENTS" ;;
  *" cloudformation deploy "*)
    if [[ -n "${FAKE_DEPLOY_FAILS:-}" ]]; then
      echo "Waiter StackUpdateComplete failed: Waiter encountered a terminal failure state" >&2; exit 255; fi
    echo "Successfully created/updated stack" ;;
  *" describe-stacks "*) cat "$FAKE_OUTPUTS" ;;
  *) echo "fake aws: unexpected call: $*" >&2; exit 2 ;;
esac
"""
# describe-stack-events as `--output text` prints them, newest first: EventId, Timestamp,
# ResourceStatus, LogicalResourceId, ResourceType, ResourceStatusReason.
FAKE_EVENTS = [
    (
        "evt-3",
        "2026-11-25T10:03:00Z",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "patient-management",
        "AWS::CloudFormation::Stack",
        "The following resource(s) failed to update: [AuthDatabase].",
    ),
    (
        "evt-2",
        "2026-11-25T10:02:00Z",
        "UPDATE_FAILED",
        "AuthDatabase",
        "AWS::RDS::DBInstance",
        "db.t4g.nano is not offered here",
    ),
    ("evt-2a", "2026-11-25T10:02:00Z", "UPDATE_FAILED", "AuthService", "AWS::ECS::Service", "None"),
    ("evt-1", "2026-11-25T10:01:00Z", "UPDATE_IN_PROGRESS", "AuthDatabase", "AWS::RDS::DBInstance", "None"),
    (
        "evt-before",
        "2026-11-20T09:00:00Z",
        "UPDATE_COMPLETE",
        "patient-management",
        "AWS::CloudFormation::Stack",
        "None",
    ),
    ("evt-0", "2026-11-20T08:59:00Z", "CREATE_FAILED", "OldResource", "AWS::EC2::Subnet", "an old failure"),
]
FAKE_OUTPUTS = [
    ("AuthDatabaseEndpoint", "auth.db.example"),
    ("GatewayUrl", "http://pm-123.us-east-1.elb.amazonaws.com"),
]


@pytest.fixture
def fake_aws(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "aws"
    script.write_text(FAKE_AWS)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "aws-calls.log"
    log.touch()
    events = tmp_path / "events.txt"
    events.write_text("".join("\t".join(event) + "\n" for event in FAKE_EVENTS))
    outputs = tmp_path / "outputs.txt"
    outputs.write_text("".join("\t".join(output) + "\n" for output in FAKE_OUTPUTS))
    env = clean_environ()
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        FAKE_AWS_LOG=str(log),
        FAKE_EVENTS=str(events),
        FAKE_OUTPUTS=str(outputs),
    )
    return env, log


def test_failure_prints_only_this_deployments_failed_events(fake_aws: tuple[dict[str, str], Path]) -> None:
    env, log = fake_aws
    result = run_deploy({**env, "FAKE_STACK_STATUS": "UPDATE_COMPLETE", "FAKE_DEPLOY_FAILS": "1"})
    assert result.returncode == 1
    assert "Waiter StackUpdateComplete failed" in result.stderr
    assert "UPDATE_FAILED AuthDatabase (AWS::RDS::DBInstance)" in result.stderr
    assert "db.t4g.nano is not offered here" in result.stderr
    assert "failed to update: [AuthDatabase]" in result.stderr
    assert "UPDATE_FAILED AuthService (AWS::ECS::Service)" in result.stderr
    assert "None" not in result.stderr, "no empty reasons"
    assert "UPDATE_IN_PROGRESS AuthDatabase" not in result.stderr, "only failures"
    assert "an old failure" not in result.stderr, "only events of this deployment"
    calls = log.read_text()
    assert "--endpoint-url http://localhost:4566" in calls, "LocalStack is the default target"
    assert "delete-stack" not in calls


def test_success_prints_the_gateway_url_and_passes_overrides(fake_aws: tuple[dict[str, str], Path]) -> None:
    env, log = fake_aws
    result = run_deploy(
        {
            **env,
            "ENDPOINT_URL": "",
            "ENVIRONMENT_NAME": "production",
            "IMAGE_PREFIX": "1234.dkr.ecr.eu-west-1.amazonaws.com/pm",
            "AUTH_SERVICE_IMAGE": "auth:pinned",
        },
        "LogLevel=WARNING",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("Gateway URL: http://pm-123.us-east-1.elb.amazonaws.com")
    assert "  AuthDatabaseEndpoint       auth.db.example" in result.stdout
    (deploy_call,) = [line for line in log.read_text().splitlines() if " deploy " in f" {line} "]
    assert "--endpoint-url" not in deploy_call, "ENDPOINT_URL= targets real AWS"
    assert "--stack-name patient-management" in deploy_call
    assert "--no-fail-on-empty-changeset" in deploy_call
    assert "--capabilities CAPABILITY_IAM" in deploy_call
    assert "EnvironmentName=production" in deploy_call
    assert "ApiGatewayImage=1234.dkr.ecr.eu-west-1.amazonaws.com/pm/api-gateway:latest" in deploy_call
    assert "AuthServiceImage=auth:pinned" in deploy_call
    assert deploy_call.endswith("LogLevel=WARNING")
    assert "delete-stack" not in log.read_text()


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_FAILED"])
def test_a_stack_that_cannot_be_updated_is_left_to_the_operator(
    fake_aws: tuple[dict[str, str], Path], status: str
) -> None:
    env, log = fake_aws
    result = run_deploy({**env, "FAKE_STACK_STATUS": status})
    assert result.returncode == 1
    assert f"is {status}, which CloudFormation cannot update" in result.stderr
    assert "aws cloudformation delete-stack --stack-name patient-management" in result.stderr
    calls = log.read_text()
    assert " deploy " not in calls
    assert "delete-stack" not in calls


def test_without_the_aws_cli_it_says_how_to_install_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dirname = shutil.which("dirname")
    assert dirname
    (bin_dir / "dirname").symlink_to(dirname)
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run(
        [bash, str(DEPLOY_SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 127
    assert "pip install awscli" in result.stderr
