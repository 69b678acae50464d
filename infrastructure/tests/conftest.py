"""Fixtures: the parsed template, a moto server on loopback, and the stack deployed to it.

moto's CloudFormation creates VPCs, subnets, gateways, security groups, IAM, log groups, RDS,
ECS and ELBv2 for real (inside moto), so the deploy test can ask those APIs what exists. A few
resource types of stack.yaml it cannot create; `MOTO_CANNOT_CREATE` names them and says why.
The moto deploy leaves out exactly those resources and puts a visible stand-in string wherever
the template refers to one of them (e.g. an ECS secret's `valueFrom` becomes
`arn:aws:stand-in:...:AuthDatabaseSecret:password::`), so tests can still check that the right
thing is wired to the right place. `test_moto_deploy.py` checks this list against moto itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto.rds.models import DBParameterGroup
from moto.server import ThreadedMotoServer

INFRASTRUCTURE_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = INFRASTRUCTURE_DIR / "stack.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STACK_NAME = "patient-management"

# Resource types in stack.yaml that moto's CloudFormation does not create (checked against moto's
# own model list by test_moto_deploy.py::test_exactly_the_types_moto_cannot_create_are_left_out).
MOTO_CANNOT_CREATE = {
    "AWS::SecretsManager::Secret": "no CloudFormation model in moto (it would be skipped silently)",
    "AWS::MSK::Cluster": "no CloudFormation model in moto",
    "AWS::MSK::Configuration": "no CloudFormation model in moto",
    "AWS::ServiceDiscovery::PrivateDnsNamespace": "no CloudFormation model in moto",
    "AWS::ServiceDiscovery::Service": "no CloudFormation model in moto",
    "AWS::CloudFormation::WaitConditionHandle": "moto ignores it on purpose (a no-op in AWS as well)",
    "Custom::KafkaBootstrapBrokers": "moto runs a custom resource's Lambda in Docker, absent here",
}


def _ref_parameter_groups_by_name() -> None:
    """Make moto's `Ref` to an AWS::RDS::DBParameterGroup give the group's name, as AWS does.

    moto (5.2) resolves `Ref` to a resource's `physical_resource_id`, which its DBParameterGroup
    model lacks, so the DB instances would get the model object itself and fail to create. The
    server runs in this process, so giving the model that property fixes every deploy to it.
    """
    if not hasattr(DBParameterGroup, "physical_resource_id"):
        DBParameterGroup.physical_resource_id = property(lambda group: group.name)  # type: ignore[attr-defined]


_ref_parameter_groups_by_name()

_SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}")
_SUB_NESTED_GETATT = re.compile(r"\$\{([A-Za-z0-9]+)\.([A-Za-z0-9]+\.[A-Za-z0-9.]+)\}")


def stand_in(logical_id: str, attribute: str | None = None) -> str:
    """What the moto deploy puts where the template refers to a resource moto cannot create."""
    suffix = f"/{attribute}" if attribute else ""
    return f"arn:aws:stand-in:{REGION}:{ACCOUNT}:{logical_id}{suffix}"


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain JSON-compatible data (short-form tags expanded, as CloudFormation does)."""
    template, matches = decode(str(path))
    assert not matches, matches
    plain: dict[str, Any] = json.loads(json.dumps(template))
    return plain


@dataclass(frozen=True)
class MotoTemplate:
    """The template as deployed to moto, and what was left out of it."""

    body: dict[str, Any]
    left_out: dict[str, str]  # logical id -> resource type


def _spell_out_nested_getatt(sub: str | list[Any]) -> str | list[Any]:
    """`${Db.Endpoint.Address}` -> `${MotoGetAtt0}` with a variable map: the same value in AWS.

    moto's Fn::Sub splits such a reference at every dot and fails; the variable-map form with
    {"Fn::GetAtt": ["Db", "Endpoint.Address"]} is what CloudFormation itself means by it.
    """
    text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], dict(sub[1]))

    def variable(match: re.Match[str]) -> str:
        name = f"MotoGetAtt{len(variables)}"
        variables[name] = {"Fn::GetAtt": [match[1], match[2]]}
        return "${" + name + "}"

    text = _SUB_NESTED_GETATT.sub(variable, text)
    return [text, variables] if variables else text


def for_moto(template: dict[str, Any]) -> MotoTemplate:
    """Leave out the resources moto cannot create; refer to them through stand-in strings."""
    resources = template["Resources"]
    left_out = {
        name: resource["Type"] for name, resource in resources.items() if resource["Type"] in MOTO_CANNOT_CREATE
    }

    def sub_text(text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            return stand_in(match[1], match[2]) if match[1] in left_out else match[0]

        return _SUB_REFERENCE.sub(replace, text)

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref" and value in left_out:
                return stand_in(value)
            if key == "Fn::GetAtt":
                name, attribute = value if isinstance(value, list) else value.split(".", 1)
                if name in left_out:
                    return stand_in(name, attribute)
            if key == "Fn::Sub":
                sub = _spell_out_nested_getatt(value)
                if isinstance(sub, str):
                    return {"Fn::Sub": sub_text(sub)}
                return {"Fn::Sub": [sub_text(sub[0]), rewrite(sub[1])]}
        return {key: rewrite(value) for key, value in node.items()}

    kept: dict[str, Any] = {}
    for name, resource in resources.items():
        if name in left_out:
            continue
        resource = rewrite(resource)
        depends_on = resource.get("DependsOn")
        if depends_on is not None:
            names = [depends_on] if isinstance(depends_on, str) else depends_on
            remaining = [dependency for dependency in names if dependency not in left_out]
            if remaining:
                resource["DependsOn"] = remaining
            else:
                del resource["DependsOn"]
        kept[name] = resource
    body = {**template, "Resources": kept, "Outputs": rewrite(template.get("Outputs", {}))}
    return MotoTemplate(body=body, left_out=left_out)


@dataclass(frozen=True)
class Deployed:
    """A stack created in moto from the template with its default parameters."""

    stack_id: str
    resources: dict[str, str]  # logical id -> physical id
    outputs: dict[str, str]
    client: Callable[[str], Any]


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def moto_template(template: dict[str, Any]) -> MotoTemplate:
    return for_moto(template)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An in-process moto server on a free loopback port, for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    """boto3 clients of the moto server, with fake credentials (never the caller's real ones)."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=moto_endpoint)

    return client


@pytest.fixture(scope="session")
def deployed(moto_template: MotoTemplate, aws: Callable[[str], Any]) -> Deployed:
    cloudformation = aws("cloudformation")
    stack_id = cloudformation.create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(moto_template.body),
        Capabilities=["CAPABILITY_IAM"],
    )["StackId"]
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    summaries = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_id)
    resources = {
        summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
        for page in summaries
        for summary in page["StackResourceSummaries"]
        if summary.get("LogicalResourceId")
    }
    stack = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    return Deployed(stack_id=stack_id, resources=resources, outputs=outputs, client=aws)


@pytest.fixture(scope="session")
def stand_in_for() -> Callable[..., str]:
    """`stand_in_for("JwtSecret")`: the string the moto deploy uses for a left-out resource."""
    return stand_in


@pytest.fixture(scope="session")
def moto_cannot_create() -> dict[str, str]:
    return dict(MOTO_CANNOT_CREATE)
