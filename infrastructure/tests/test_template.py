"""Checks on stack.yaml itself: cfn-lint, size, and the wiring that moto does not record.

moto's CloudFormation ignores some properties it cannot model (security-group egress, the
network/load-balancer/registry settings of ECS services, roles and network mode of task
definitions, RDS security groups and deletion protection, managed-policy attachments, VPC DNS
flags, subnet route-table associations) and cannot create secrets, MSK or Cloud Map at all
(see conftest.py). Those are checked here, on the template as CloudFormation reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pm_common.settings import JwtSettings

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "stack.yaml"
TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation accepts inline (without an S3 URL)

SERVICES = ("ApiGateway", "AuthService", "PatientService", "BillingService", "AnalyticsService")
DATABASES = {  # database prefix -> (DBName, owning service)
    "Auth": ("auth", "AuthService"),
    "Patient": ("patient", "PatientService"),
    "Billing": ("billing", "BillingService"),
    "Analytics": ("analytics", "AnalyticsService"),
}
NO_EGRESS = ("icmp", 252, 86, "255.255.255.255/32")
AWS_APIS = ("tcp", 443, 443, "0.0.0.0/0")


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def properties(template: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = template["Resources"][name]["Properties"]
    return props


def container(template: dict[str, Any], service: str) -> dict[str, Any]:
    (definition,) = properties(template, f"{service}TaskDefinition")["ContainerDefinitions"]
    return dict(definition)


def environment(template: dict[str, Any], service: str) -> dict[str, Any]:
    return {entry["Name"]: entry["Value"] for entry in container(template, service)["Environment"]}


def secrets(template: dict[str, Any], service: str) -> dict[str, Any]:
    return {entry["Name"]: entry["ValueFrom"] for entry in container(template, service).get("Secrets", [])}


def test_cfn_lint_reports_nothing_not_even_informational() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--include-checks", "I", "--format", "parseable", "--", str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.stdout == "", result.stdout
    assert result.returncode == 0, result.stderr


def test_template_is_small_enough_to_deploy_without_an_s3_bucket() -> None:
    # Above this, `aws cloudformation deploy --template-file` (the seed's command) needs --s3-bucket.
    size = TEMPLATE_PATH.stat().st_size
    assert size <= TEMPLATE_BODY_LIMIT, f"stack.yaml is {size} bytes; CloudFormation takes {TEMPLATE_BODY_LIMIT}"


# --- secrets ----------------------------------------------------------------------------------


def test_jwt_key_is_generated_from_the_base64_alphabet_only(template: dict[str, Any]) -> None:
    generate = properties(template, "JwtSecret")["GenerateSecretString"]
    # Secrets Manager's pool: letters, digits, the 32 ASCII punctuation marks (space only on request).
    pool = set(string.ascii_letters + string.digits + string.punctuation)
    assert not generate.get("IncludeSpace", False)
    allowed = pool - set(generate["ExcludeCharacters"])
    assert allowed == set(string.ascii_letters + string.digits + "+/")
    length = generate["PasswordLength"]
    assert length % 4 == 0, "no padding needed: every such string is valid base64"
    assert length * 3 // 4 >= 32, "the services need a key of at least 32 bytes"
    assert "SecretStringTemplate" not in generate, "the whole secret string is the key"


def test_generated_jwt_keys_pass_the_services_own_validation(
    template: dict[str, Any], aws: Callable[[str], Any]
) -> None:
    """moto's GetRandomPassword implements the generator behind GenerateSecretString."""
    generate = properties(template, "JwtSecret")["GenerateSecretString"]
    secretsmanager = aws("secretsmanager")
    for _ in range(50):
        key = secretsmanager.get_random_password(
            PasswordLength=generate["PasswordLength"],
            ExcludeCharacters=generate["ExcludeCharacters"],
            IncludeSpace=generate["IncludeSpace"],
        )["RandomPassword"]
        try:
            decoded = base64.b64decode(key, validate=True)
        except binascii.Error as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{key!r} is not base64: {exc}")
        assert len(decoded) == 48
        JwtSettings(JWT_SECRET=key)  # raises if the services would refuse it


def test_database_credentials_agree_everywhere(template: dict[str, Any]) -> None:
    for prefix, (db_name, service) in DATABASES.items():
        secret = f"{prefix}DatabaseSecret"
        generate = properties(template, secret)["GenerateSecretString"]
        username = json.loads(generate["SecretStringTemplate"])["username"]
        assert generate["GenerateStringKey"] == "password"
        assert generate["ExcludePunctuation"] is True
        database = properties(template, f"{prefix}Database")
        assert database["MasterUsername"] == username
        assert database["DBName"] == db_name
        assert database["MasterUserPassword"] == {
            "Fn::Sub": f"{{{{resolve:secretsmanager:${{{secret}}}:SecretString:password}}}}"
        }
        env = environment(template, service)
        assert env["SPRING_DATASOURCE_USERNAME"] == username
        assert env["SPRING_DATASOURCE_URL"] == {
            "Fn::Sub": f"jdbc:postgresql://${{{prefix}Database.Endpoint.Address}}:5432/{db_name}"
        }
        assert database["Port"] == "5432"
        assert secrets(template, service)["SPRING_DATASOURCE_PASSWORD"] == {"Fn::Sub": f"${{{secret}}}:password::"}


def test_no_secret_sits_in_plain_task_environment_or_parameters(template: dict[str, Any]) -> None:
    for service in SERVICES:
        for name in environment(template, service):
            assert not any(word in name for word in ("PASSWORD", "SECRET", "TOKEN")), (service, name)
    assert secrets(template, "ApiGateway") == {"JWT_SECRET": ref("JwtSecret")}
    for service in SERVICES:  # every service verifies tokens (auth-service also signs them)
        assert secrets(template, service)["JWT_SECRET"] == ref("JwtSecret"), service
    for name, parameter in template["Parameters"].items():
        assert "password" not in name.lower()
        assert "secret" not in name.lower()
        assert "NoEcho" not in parameter, "no secret is passed in as a parameter"


def test_each_execution_role_reads_exactly_the_secrets_of_its_task(template: dict[str, Any]) -> None:
    for service in SERVICES:
        task = properties(template, f"{service}TaskDefinition")
        assert task["ExecutionRoleArn"] == {"Fn::GetAtt": [f"{service}ExecutionRole", "Arn"]}
        used = set()
        for value_from in secrets(template, service).values():
            reference = value_from["Ref"] if "Ref" in value_from else value_from["Fn::Sub"].split("}")[0][2:]
            used.add(reference)
        role = properties(template, f"{service}ExecutionRole")
        (policy,) = role["Policies"]
        statements = policy["PolicyDocument"]["Statement"]
        granted = {
            item["Ref"]
            for statement in statements
            if statement["Action"] == "secretsmanager:GetSecretValue"
            for item in statement["Resource"]
        }
        assert granted == used, service
        logs = [statement for statement in statements if statement["Action"] != "secretsmanager:GetSecretValue"]
        assert logs == [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": {"Fn::GetAtt": [f"{service}LogGroup", "Arn"]},
            }
        ]
        assert role["ManagedPolicyArns"] == [ref("ImagePullPolicy")]


# --- network ----------------------------------------------------------------------------------


def _egress(template: dict[str, Any]) -> set[tuple[str, str, int, int, str]]:
    rules = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::EC2::SecurityGroup":
            continue
        for rule in resource["Properties"]["SecurityGroupEgress"]:
            target = (
                rule["DestinationSecurityGroupId"]["Ref"] if "DestinationSecurityGroupId" in rule else rule["CidrIp"]
            )
            rules.add((name, rule["IpProtocol"], rule["FromPort"], rule["ToPort"], target))
    return rules


def test_egress_allows_exactly_the_flows_of_the_system(template: dict[str, Any]) -> None:
    def tcp(source: str, port: int, target: str) -> tuple[str, str, int, int, str]:
        return (f"{source}SecurityGroup", "tcp", port, port, f"{target}SecurityGroup")

    expected = {
        tcp("LoadBalancer", 4004, "ApiGateway"),
        tcp("ApiGateway", 4005, "AuthService"),
        tcp("ApiGateway", 4000, "PatientService"),
        tcp("ApiGateway", 4002, "AnalyticsService"),
        tcp("PatientService", 9001, "BillingService"),
        tcp("PatientService", 9092, "Kafka"),
        tcp("AnalyticsService", 9092, "Kafka"),
        *(tcp(service, 5432, f"{prefix}Database") for prefix, (_, service) in DATABASES.items()),
        *((f"{service}SecurityGroup", *AWS_APIS) for service in SERVICES),
        *((f"{prefix}DatabaseSecurityGroup", *NO_EGRESS) for prefix in DATABASES),
        ("KafkaSecurityGroup", *NO_EGRESS),
    }
    assert _egress(template) == expected


def test_https_listener_and_its_ingress_exist_only_with_a_certificate(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["LoadBalancerHttpsFromInternet"]["Condition"] == "HasCertificate"
    assert resources["LoadBalancerHttpsFromInternet"]["Properties"]["FromPort"] == 443
    assert resources["HttpsListener"]["Condition"] == "HasCertificate"
    https = resources["HttpsListener"]["Properties"]
    assert https["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": ref("ApiGatewayTargetGroup")}]
    with_certificate, without = resources["HttpListener"]["Properties"]["DefaultActions"]["Fn::If"][1:]
    assert with_certificate[0]["Type"] == "redirect"
    assert without == [{"Type": "forward", "TargetGroupArn": ref("ApiGatewayTargetGroup")}]
    # The gateway service waits for whichever listener attaches its target group.
    assert resources["ApiGatewayService"]["DependsOn"] == "ListenersReady"
    assert resources["ListenersReady"]["Metadata"] == {
        "Http": ref("HttpListener"),
        "Https": {"Fn::If": ["HasCertificate", ref("HttpsListener"), ""]},
    }
    assert template["Outputs"]["GatewayUrl"]["Value"]["Fn::If"][0] == "HasCertificate"


def test_vpc_dns_and_subnet_routing(template: dict[str, Any]) -> None:
    vpc = properties(template, "Vpc")
    assert vpc["EnableDnsSupport"] is True
    assert vpc["EnableDnsHostnames"] is True  # both needed by the Cloud Map private namespace
    associations = {
        props["SubnetId"]["Ref"]: props["RouteTableId"]["Ref"]
        for props in (
            resource["Properties"]
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::EC2::SubnetRouteTableAssociation"
        )
    }
    assert associations == {
        "PublicSubnet1": "PublicRouteTable",
        "PublicSubnet2": "PublicRouteTable",
        "PrivateSubnet1": "PrivateRouteTable1",
        "PrivateSubnet2": "PrivateRouteTable2",
    }
    for zone in ("1", "2"):
        assert properties(template, f"PrivateDefaultRoute{zone}")["NatGatewayId"] == ref(f"NatGateway{zone}")
        assert properties(template, f"NatGateway{zone}")["SubnetId"] == ref(f"PublicSubnet{zone}")
        az = properties(template, f"PrivateSubnet{zone}")["AvailabilityZone"]
        assert properties(template, f"PublicSubnet{zone}")["AvailabilityZone"] == az
    assert properties(template, "PublicDefaultRoute")["GatewayId"] == ref("InternetGateway")


# --- data stores ------------------------------------------------------------------------------


def test_databases_are_private_encrypted_and_guarded_in_production(template: dict[str, Any]) -> None:
    for prefix in DATABASES:
        resource = template["Resources"][f"{prefix}Database"]
        assert resource["DeletionPolicy"] == "Snapshot"
        assert resource["UpdateReplacePolicy"] == "Snapshot"
        database = resource["Properties"]
        assert database["VPCSecurityGroups"] == [ref(f"{prefix}DatabaseSecurityGroup")]
        assert database["DBSubnetGroupName"] == ref("DatabaseSubnetGroup")
        assert database["PubliclyAccessible"] is False
        assert database["StorageEncrypted"] is True
        assert database["Engine"] == "postgres"
        assert database["MultiAZ"] == {"Fn::If": ["IsProduction", True, False]}
        assert database["DeletionProtection"] == {"Fn::If": ["IsProduction", True, False]}
    assert properties(template, "DatabaseSubnetGroup")["SubnetIds"] == [ref("PrivateSubnet1"), ref("PrivateSubnet2")]


def test_databases_log_no_values(template: dict[str, Any]) -> None:
    """One parameter group for all four: errors without DETAIL or statement text, no statement logs."""
    group = properties(template, "DatabaseParameterGroup")
    assert template["Resources"]["DatabaseParameterGroup"]["Type"] == "AWS::RDS::DBParameterGroup"
    # The family follows the engine's major version, which DatabaseEngineVersion pins.
    version = template["Parameters"]["DatabaseEngineVersion"]
    assert version["AllowedPattern"] == r"^17\.\d+$"
    assert version["Default"].startswith("17.")
    assert group["Family"] == "postgres17"
    assert group["Parameters"] == {
        "rds.force_ssl": "1",  # RDS's default since PostgreSQL 15, pinned in the custom group
        "log_error_verbosity": "terse",  # no DETAIL lines (they quote key values, e.g. an email)
        "log_min_error_statement": "panic",  # no statement text with errors
        "log_statement": "none",
        "log_min_duration_statement": "-1",
    }
    for prefix in DATABASES:
        database = properties(template, f"{prefix}Database")
        assert database["DBParameterGroupName"] == ref("DatabaseParameterGroup"), prefix
        assert database["EngineVersion"] == ref("DatabaseEngineVersion")


def _server_properties(template: dict[str, Any]) -> dict[str, str]:
    text = properties(template, "KafkaConfiguration")["ServerProperties"]["Fn::Sub"]
    assert isinstance(text, str)
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_kafka_keeps_events_for_the_retention_parameter(template: dict[str, Any]) -> None:
    settings = _server_properties(template)
    # Topics are auto-created with the brokers' defaults, so the broker-wide retention is the
    # patient topic's (and patient.DLT's): there is no per-topic setting in this stack.
    assert settings["auto.create.topics.enable"] == "true"
    assert settings["log.retention.hours"] == "${PatientTopicRetentionHours}"
    assert not {"log.retention.ms", "log.retention.minutes"} & set(settings), "they would take precedence"
    assert settings["num.partitions"] == "3"
    parameter = template["Parameters"]["PatientTopicRetentionHours"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 168, 1)  # 7 days
    cluster = properties(template, "KafkaCluster")["ConfigurationInfo"]
    assert cluster == {
        "Arn": {"Fn::GetAtt": ["KafkaConfiguration", "Arn"]},
        "Revision": {"Fn::GetAtt": ["KafkaConfiguration", "LatestRevision.Revision"]},
    }


def test_msk_cluster_is_private_and_its_brokers_reach_the_services(template: dict[str, Any]) -> None:
    cluster = properties(template, "KafkaCluster")
    assert cluster["BrokerNodeGroupInfo"]["ClientSubnets"] == [ref("PrivateSubnet1"), ref("PrivateSubnet2")]
    assert cluster["BrokerNodeGroupInfo"]["SecurityGroups"] == [ref("KafkaSecurityGroup")]
    # Plaintext clients use port 9092, the port the security groups open.
    assert cluster["EncryptionInfo"]["EncryptionInTransit"] == {"ClientBroker": "PLAINTEXT", "InCluster": True}
    assert "ConnectivityInfo" not in cluster["BrokerNodeGroupInfo"], "no public access"
    brokers = properties(template, "KafkaBootstrapBrokers")
    assert brokers["ClusterArn"] == ref("KafkaCluster")
    assert brokers["ServiceToken"] == {"Fn::GetAtt": ["KafkaBootstrapBrokersFunction", "Arn"]}
    bootstrap = {"Fn::GetAtt": ["KafkaBootstrapBrokers", "BootstrapBrokerString"]}
    assert environment(template, "PatientService")["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    assert environment(template, "AnalyticsService")["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    for service in ("ApiGateway", "AuthService", "BillingService"):
        assert "KAFKA_BOOTSTRAP_SERVERS" not in environment(template, service)
    statements = properties(template, "KafkaBootstrapBrokersRole")["Policies"][0]["PolicyDocument"]["Statement"]
    assert statements[0] == {"Effect": "Allow", "Action": "kafka:GetBootstrapBrokers", "Resource": ref("KafkaCluster")}


class _Receiver(BaseHTTPRequestHandler):
    """Plays CloudFormation's pre-signed response URL: records the PUT body."""

    bodies: list[dict[str, Any]] = []

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"bodies": bodies})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/response", bodies
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("request_type", "kafka_answer", "status"),
    [
        ("Create", "brokers", "SUCCESS"),
        ("Update", "brokers", "SUCCESS"),
        ("Delete", None, "SUCCESS"),
        ("Create", "error", "FAILED"),
    ],
)
def test_bootstrap_brokers_function_answers_cloudformation(
    template: dict[str, Any],
    response_url: tuple[str, list[dict[str, Any]]],
    request_type: str,
    kafka_answer: str | None,
    status: str,
) -> None:
    """The inline Lambda code, run here against a stubbed Kafka API (botocore's Stubber)."""
    url, bodies = response_url
    cluster_arn = "arn:aws:kafka:us-east-1:123456789012:cluster/pm-kafka/abc"
    kafka = boto3.client("kafka", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(kafka)
    if kafka_answer == "brokers":
        stubber.add_response(
            "get_bootstrap_brokers",
            {"BootstrapBrokerString": "b-1.pm:9092,b-2.pm:9092"},
            {"ClusterArn": cluster_arn},
        )
    elif kafka_answer == "error":
        stubber.add_client_error("get_bootstrap_brokers", "NotFoundException", "no such cluster")
    code = properties(template, "KafkaBootstrapBrokersFunction")["Code"]["ZipFile"]
    namespace: dict[str, Any] = {}
    exec(compile(code, "index.py", "exec"), namespace)  # noqa: S102 - the function's own source
    namespace["boto3"] = type("FakeBoto3", (), {"client": staticmethod(lambda service: kafka)})
    event = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/pm/1",
        "RequestId": "request-1",
        "LogicalResourceId": "KafkaBootstrapBrokers",
        "ResourceProperties": {"ClusterArn": cluster_arn},
    }
    context = type("Context", (), {"log_stream_name": "2026/11/25/stream"})()
    with stubber:
        namespace["handler"](event, context)
    stubber.assert_no_pending_responses()
    (body,) = bodies
    assert body["Status"] == status
    assert body["RequestId"] == "request-1"
    assert body["LogicalResourceId"] == "KafkaBootstrapBrokers"
    assert body["StackId"] == event["StackId"]
    assert body["PhysicalResourceId"] == "KafkaBootstrapBrokers"
    if kafka_answer == "brokers":
        assert body["Data"] == {"BootstrapBrokerString": "b-1.pm:9092,b-2.pm:9092"}
    if status == "FAILED":
        assert "NotFoundException" in body["Reason"]


# --- ECS --------------------------------------------------------------------------------------


def test_services_run_on_fargate_in_private_subnets_without_public_ips(template: dict[str, Any]) -> None:
    for service in SERVICES:
        logical = "ApiGatewayService" if service == "ApiGateway" else service
        props = properties(template, logical)
        assert props["LaunchType"] == "FARGATE"
        assert props["Cluster"] == ref("Cluster")
        assert props["TaskDefinition"] == ref(f"{service}TaskDefinition")
        assert props["NetworkConfiguration"]["AwsvpcConfiguration"] == {
            "AssignPublicIp": "DISABLED",
            "Subnets": [ref("PrivateSubnet1"), ref("PrivateSubnet2")],
            "SecurityGroups": [ref(f"{service}SecurityGroup")],
        }
        assert props["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        task = properties(template, f"{service}TaskDefinition")
        assert task["RequiresCompatibilities"] == ["FARGATE"]
        assert task["NetworkMode"] == "awsvpc"
        assert task["TaskRoleArn"] == {"Fn::GetAtt": ["TaskRole", "Arn"]}
    assert properties(template, "ApiGatewayService")["LoadBalancers"] == [
        {"ContainerName": "api-gateway", "ContainerPort": 4004, "TargetGroupArn": ref("ApiGatewayTargetGroup")}
    ]
    task_role = properties(template, "TaskRole")
    assert "Policies" not in task_role, "the services call no AWS API: their task role grants nothing"
    assert "ManagedPolicyArns" not in task_role


def test_each_service_runs_its_desired_count_parameter_of_tasks(template: dict[str, Any]) -> None:
    for service in SERVICES:
        logical = "ApiGatewayService" if service == "ApiGateway" else service
        parameter = template["Parameters"][f"{service}DesiredCount"]
        assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 1, 1), service
        assert properties(template, logical)["DesiredCount"] == ref(f"{service}DesiredCount")


def test_services_find_each_other_through_cloud_map(template: dict[str, Any]) -> None:
    namespace = properties(template, "ServiceNamespace")
    assert namespace == {"Name": ref("ServiceNamespaceName"), "Vpc": ref("Vpc")}
    names = {}
    for service in ("AuthService", "PatientService", "BillingService", "AnalyticsService"):
        discovery = properties(template, f"{service}Discovery")
        assert discovery["NamespaceId"] == ref("ServiceNamespace")
        assert discovery["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10}]
        assert properties(template, service)["ServiceRegistries"] == [
            {"RegistryArn": {"Fn::GetAtt": [f"{service}Discovery", "Arn"]}}
        ]
        names[service] = discovery["Name"]
    assert "ServiceRegistries" not in properties(template, "ApiGatewayService"), "reached through the ALB"
    gateway = environment(template, "ApiGateway")
    assert gateway["AUTH_SERVICE_URL"] == {"Fn::Sub": f"http://{names['AuthService']}.${{ServiceNamespaceName}}:4005"}
    assert gateway["PATIENT_SERVICE_URL"] == {
        "Fn::Sub": f"http://{names['PatientService']}.${{ServiceNamespaceName}}:4000"
    }
    assert gateway["ANALYTICS_SERVICE_URL"] == {
        "Fn::Sub": f"http://{names['AnalyticsService']}.${{ServiceNamespaceName}}:4002"
    }
    patient = environment(template, "PatientService")
    assert patient["BILLING_SERVICE_ADDRESS"] == {"Fn::Sub": f"{names['BillingService']}.${{ServiceNamespaceName}}"}
    assert patient["BILLING_SERVICE_GRPC_PORT"] == "9001"


def test_demo_data_only_outside_production(template: dict[str, Any]) -> None:
    for service in ("AuthService", "PatientService"):
        assert environment(template, service)["SEED_DEMO_DATA"] == {"Fn::If": ["IsProduction", "false", "true"]}
    for service in SERVICES:
        assert environment(template, service)["ENVIRONMENT"] == ref("EnvironmentName")
    assert template["Parameters"]["EnvironmentName"]["AllowedValues"] == ["dev", "test", "production"]
