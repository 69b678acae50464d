"""Deploy stack.yaml to moto (on loopback) and ask the AWS APIs what was actually created.

The stack is created with the template's default parameters: EnvironmentName=production and no
certificate. What moto cannot create is left out and referred to by stand-in strings
(conftest.py says which and why); what moto creates but does not record (security-group egress,
ECS service networking, RDS security groups, ...) is checked in test_template.py.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

from moto.cloudformation.parsing import get_model_map

SERVICES = {  # logical prefix -> (container name, HTTP port)
    "ApiGateway": ("api-gateway", 4004),
    "AuthService": ("auth-service", 4005),
    "PatientService": ("patient-service", 4000),
    "BillingService": ("billing-service", 4001),
    "AnalyticsService": ("analytics-service", 4002),
}
NAMESPACE = "patient-management.internal"


def _policy(document: Any) -> dict[str, Any]:
    """A policy document as data. moto hands back policies set by CloudFormation as a Python repr."""
    if isinstance(document, dict):
        return document
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError:
        parsed = ast.literal_eval(document)
    assert isinstance(parsed, dict)
    return parsed


def test_exactly_the_types_moto_cannot_create_are_left_out(
    template: dict[str, Any], moto_template: Any, moto_cannot_create: dict[str, str], deployed: Any
) -> None:
    types = {resource["Type"] for resource in template["Resources"].values()}
    unsupported = {t for t in types if t not in get_model_map()}
    # If moto learns one of these, or the template gains one it lacks, this list must change.
    assert unsupported == set(moto_cannot_create)
    assert set(moto_template.left_out.values()) == set(moto_cannot_create)
    # Everything else was created: nothing skipped silently. (The two HTTPS resources are off
    # because the default parameters set no certificate.)
    conditional = {"HttpsListener", "LoadBalancerHttpsFromInternet"}
    expected = set(template["Resources"]) - set(moto_template.left_out) - conditional
    assert set(deployed.resources) == expected
    status = deployed.client("cloudformation").describe_stacks(StackName=deployed.stack_id)["Stacks"][0]
    assert status["StackStatus"] == "CREATE_COMPLETE"


def test_vpc_has_public_and_private_subnets_in_two_zones(deployed: Any) -> None:
    ec2 = deployed.client("ec2")
    r = deployed.resources
    (vpc,) = ec2.describe_vpcs(VpcIds=[r["Vpc"]])["Vpcs"]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    subnets = {
        subnet["SubnetId"]: subnet
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    }
    expected = {
        "PublicSubnet1": "10.0.0.0/24",
        "PublicSubnet2": "10.0.1.0/24",
        "PrivateSubnet1": "10.0.10.0/24",
        "PrivateSubnet2": "10.0.11.0/24",
    }
    assert set(subnets) == {r[name] for name in expected}
    for name, cidr in expected.items():
        assert subnets[r[name]]["CidrBlock"] == cidr
    zone = {name: subnets[r[name]]["AvailabilityZone"] for name in expected}
    assert zone["PublicSubnet1"] == zone["PrivateSubnet1"]
    assert zone["PublicSubnet2"] == zone["PrivateSubnet2"]
    assert zone["PrivateSubnet1"] != zone["PrivateSubnet2"]


def test_internet_and_nat_gateways_route_the_subnets(deployed: Any) -> None:
    ec2 = deployed.client("ec2")
    r = deployed.resources
    (gateway,) = ec2.describe_internet_gateways(InternetGatewayIds=[r["InternetGateway"]])["InternetGateways"]
    assert gateway["Attachments"] == [{"State": "available", "VpcId": r["Vpc"]}]
    nats = {
        nat["NatGatewayId"]: nat
        for nat in ec2.describe_nat_gateways(NatGatewayIds=[r["NatGateway1"], r["NatGateway2"]])["NatGateways"]
    }
    for zone in ("1", "2"):
        nat = nats[r[f"NatGateway{zone}"]]
        assert nat["SubnetId"] == r[f"PublicSubnet{zone}"]
        assert nat["State"] == "available"
        assert nat["NatGatewayAddresses"][0]["PublicIp"]

    def default_route(table: str) -> dict[str, Any]:
        (route_table,) = ec2.describe_route_tables(RouteTableIds=[r[table]])["RouteTables"]
        (route,) = [route for route in route_table["Routes"] if route.get("DestinationCidrBlock") == "0.0.0.0/0"]
        return dict(route)

    assert default_route("PublicRouteTable")["GatewayId"] == r["InternetGateway"]
    assert default_route("PrivateRouteTable1")["NatGatewayId"] == r["NatGateway1"]
    assert default_route("PrivateRouteTable2")["NatGatewayId"] == r["NatGateway2"]


def test_security_groups_admit_exactly_the_system_flows(deployed: Any) -> None:
    ec2 = deployed.client("ec2")
    r = deployed.resources
    group_names = {physical: logical for logical, physical in r.items() if logical.endswith("SecurityGroup")}
    assert len(group_names) == 11
    groups = ec2.describe_security_groups(GroupIds=list(group_names))["SecurityGroups"]
    admitted = set()
    for group in groups:
        assert group["VpcId"] == r["Vpc"]
        for permission in group["IpPermissions"]:
            sources = [group_names[pair["GroupId"]] for pair in permission["UserIdGroupPairs"]]
            sources += [ip_range["CidrIp"] for ip_range in permission["IpRanges"]]
            assert not permission.get("Ipv6Ranges")
            for source in sources:
                admitted.add(
                    (
                        source,
                        group_names[group["GroupId"]],
                        permission["IpProtocol"],
                        permission["FromPort"],
                        permission["ToPort"],
                    )
                )

    def flow(source: str, target: str, port: int) -> tuple[str, str, str, int, int]:
        return (f"{source}SecurityGroup", f"{target}SecurityGroup", "tcp", port, port)

    assert admitted == {
        ("0.0.0.0/0", "LoadBalancerSecurityGroup", "tcp", 80, 80),  # the only door from outside
        flow("LoadBalancer", "ApiGateway", 4004),
        flow("ApiGateway", "AuthService", 4005),
        flow("ApiGateway", "PatientService", 4000),
        flow("ApiGateway", "AnalyticsService", 4002),
        flow("PatientService", "BillingService", 9001),
        flow("AuthService", "AuthDatabase", 5432),
        flow("PatientService", "PatientDatabase", 5432),
        flow("BillingService", "BillingDatabase", 5432),
        flow("AnalyticsService", "AnalyticsDatabase", 5432),
        flow("PatientService", "Kafka", 9092),
        flow("AnalyticsService", "Kafka", 9092),
    }


def test_load_balancer_forwards_to_the_gateway_checked_on_health(deployed: Any) -> None:
    elbv2 = deployed.client("elbv2")
    r = deployed.resources
    (balancer,) = elbv2.describe_load_balancers(LoadBalancerArns=[r["LoadBalancer"]])["LoadBalancers"]
    assert balancer["Scheme"] == "internet-facing"
    assert balancer["Type"] == "application"
    assert {zone["SubnetId"] for zone in balancer["AvailabilityZones"]} == {r["PublicSubnet1"], r["PublicSubnet2"]}
    assert balancer["SecurityGroups"] == [r["LoadBalancerSecurityGroup"]]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=r["LoadBalancer"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    assert listener["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": r["ApiGatewayTargetGroup"]}]
    (group,) = elbv2.describe_target_groups(TargetGroupArns=[r["ApiGatewayTargetGroup"]])["TargetGroups"]
    assert group["TargetType"] == "ip"
    assert (group["Protocol"], group["Port"], group["VpcId"]) == ("HTTP", 4004, r["Vpc"])
    assert (group["HealthCheckProtocol"], group["HealthCheckPath"]) == ("HTTP", "/health")
    assert group["Matcher"] == {"HttpCode": "200"}
    assert group["LoadBalancerArns"] == [r["LoadBalancer"]]
    assert deployed.outputs["GatewayUrl"] == f"http://{balancer['DNSName']}"


def test_one_private_encrypted_postgres_per_service(deployed: Any) -> None:
    rds = deployed.client("rds")
    r = deployed.resources
    for prefix, (db_name, user) in {
        "Auth": ("auth", "auth_service"),
        "Patient": ("patient", "patient_service"),
        "Billing": ("billing", "billing_service"),
        "Analytics": ("analytics", "analytics_service"),
    }.items():
        (database,) = rds.describe_db_instances(DBInstanceIdentifier=r[f"{prefix}Database"])["DBInstances"]
        assert (database["Engine"], database["EngineVersion"]) == ("postgres", "17.9")
        assert (database["DBName"], database["MasterUsername"]) == (db_name, user)
        assert database["Endpoint"]["Port"] == 5432
        assert database["StorageEncrypted"] is True
        assert database["PubliclyAccessible"] is False
        assert database["MultiAZ"] is True  # production
        assert database["BackupRetentionPeriod"] == 7
        assert {s["SubnetIdentifier"] for s in database["DBSubnetGroup"]["Subnets"]} == {
            r["PrivateSubnet1"],
            r["PrivateSubnet2"],
        }
        assert deployed.outputs[f"{prefix}DatabaseEndpoint"] == database["Endpoint"]["Address"]
        assert [group["DBParameterGroupName"] for group in database["DBParameterGroups"]] == [
            r["DatabaseParameterGroup"]
        ]


def test_database_parameter_group_keeps_values_out_of_the_logs(deployed: Any) -> None:
    rds = deployed.client("rds")
    name = deployed.resources["DatabaseParameterGroup"]
    (group,) = rds.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"]
    assert group["DBParameterGroupFamily"] == "postgres17"
    parameters = rds.describe_db_parameters(DBParameterGroupName=name, Source="user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in parameters} == {
        "rds.force_ssl": "1",
        "log_error_verbosity": "terse",
        "log_min_error_statement": "panic",
        "log_statement": "none",
        "log_min_duration_statement": "-1",
    }


def _container(deployed: Any, service: str) -> dict[str, Any]:
    ecs = deployed.client("ecs")
    task = ecs.describe_task_definition(taskDefinition=deployed.resources[f"{service}TaskDefinition"])["taskDefinition"]
    (definition,) = task["containerDefinitions"]
    return dict(definition)


def _database_url(deployed: Any, prefix: str, db_name: str) -> str:
    rds = deployed.client("rds")
    (database,) = rds.describe_db_instances(DBInstanceIdentifier=deployed.resources[f"{prefix}Database"])["DBInstances"]
    return f"jdbc:postgresql://{database['Endpoint']['Address']}:5432/{db_name}"


def test_task_definitions_carry_the_environment_contract_and_secrets(
    deployed: Any, stand_in_for: Callable[..., str]
) -> None:
    common = {"ENVIRONMENT": "production", "WORKERS": "1", "LOG_LEVEL": "INFO"}
    brokers = stand_in_for("KafkaBootstrapBrokers", "BootstrapBrokerString")
    jwt = stand_in_for("JwtSecret")

    def password(prefix: str) -> str:
        return f"{stand_in_for(f'{prefix}DatabaseSecret')}:password::"

    expected = {
        "ApiGateway": (
            {
                "PORT": "4004",
                "AUTH_SERVICE_URL": f"http://auth-service.{NAMESPACE}:4005",
                "PATIENT_SERVICE_URL": f"http://patient-service.{NAMESPACE}:4000",
                "ANALYTICS_SERVICE_URL": f"http://analytics-service.{NAMESPACE}:4002",
            },
            {"JWT_SECRET": jwt},
        ),
        "AuthService": (
            {
                "PORT": "4005",
                "SEED_DEMO_DATA": "false",
                "SPRING_DATASOURCE_URL": _database_url(deployed, "Auth", "auth"),
                "SPRING_DATASOURCE_USERNAME": "auth_service",
            },
            {"JWT_SECRET": jwt, "SPRING_DATASOURCE_PASSWORD": password("Auth")},
        ),
        "PatientService": (
            {
                "PORT": "4000",
                "SEED_DEMO_DATA": "false",
                "SPRING_DATASOURCE_URL": _database_url(deployed, "Patient", "patient"),
                "SPRING_DATASOURCE_USERNAME": "patient_service",
                "KAFKA_BOOTSTRAP_SERVERS": brokers,
                "BILLING_SERVICE_ADDRESS": f"billing-service.{NAMESPACE}",
                "BILLING_SERVICE_GRPC_PORT": "9001",
            },
            {"JWT_SECRET": jwt, "SPRING_DATASOURCE_PASSWORD": password("Patient")},
        ),
        "BillingService": (
            {
                "PORT": "4001",
                "GRPC_PORT": "9001",
                "SPRING_DATASOURCE_URL": _database_url(deployed, "Billing", "billing"),
                "SPRING_DATASOURCE_USERNAME": "billing_service",
            },
            {"JWT_SECRET": jwt, "SPRING_DATASOURCE_PASSWORD": password("Billing")},
        ),
        "AnalyticsService": (
            {
                "PORT": "4002",
                "SPRING_DATASOURCE_URL": _database_url(deployed, "Analytics", "analytics"),
                "SPRING_DATASOURCE_USERNAME": "analytics_service",
                "KAFKA_BOOTSTRAP_SERVERS": brokers,
            },
            {"JWT_SECRET": jwt, "SPRING_DATASOURCE_PASSWORD": password("Analytics")},
        ),
    }
    for service, (env, secrets) in expected.items():
        name, port = SERVICES[service]
        definition = _container(deployed, service)
        assert definition["name"] == name
        assert definition["image"] == f"patient-management/{name}:latest"
        assert definition["essential"] is True
        assert {entry["name"]: entry["value"] for entry in definition["environment"]} == {**common, **env}
        assert {entry["name"]: entry["valueFrom"] for entry in definition["secrets"]} == secrets
        ports = [mapping["containerPort"] for mapping in definition["portMappings"]]
        assert ports == ([4001, 9001] if service == "BillingService" else [port])
        # The image's own probe: GET /health on $PORT (set above), plus gRPC health for billing.
        probe = ["CMD", "/app/.venv/bin/python", "/app/healthcheck.py"]
        assert definition["healthCheck"]["command"] == probe + (["--grpc"] if service == "BillingService" else [])
        assert definition["healthCheck"]["startPeriod"] == 60
        assert definition["logConfiguration"] == {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": f"/ecs/patient-management/{name}",
                "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "ecs",
            },
        }


def test_ecs_cluster_runs_one_service_per_task_definition(deployed: Any) -> None:
    ecs = deployed.client("ecs")
    r = deployed.resources
    (cluster,) = ecs.describe_clusters(clusters=[r["Cluster"]])["clusters"]
    assert cluster["status"] == "ACTIVE"
    services = ecs.describe_services(
        cluster=r["Cluster"],
        services=[
            r[name]
            for name in ("ApiGatewayService", "AuthService", "PatientService", "BillingService", "AnalyticsService")
        ],
    )["services"]
    by_task = {service["taskDefinition"]: service for service in services}
    assert set(by_task) == {r[f"{prefix}TaskDefinition"] for prefix in SERVICES}
    for service in services:
        assert service["status"] == "ACTIVE"
        assert service["desiredCount"] == 1  # the *DesiredCount parameters' default


def test_roles_grant_only_what_each_task_needs(deployed: Any, stand_in_for: Callable[..., str]) -> None:
    iam = deployed.client("iam")
    logs = deployed.client("logs")
    r = deployed.resources
    readable = {
        "ApiGateway": ["JwtSecret"],
        "AuthService": ["JwtSecret", "AuthDatabaseSecret"],
        "PatientService": ["JwtSecret", "PatientDatabaseSecret"],
        "BillingService": ["JwtSecret", "BillingDatabaseSecret"],
        "AnalyticsService": ["JwtSecret", "AnalyticsDatabaseSecret"],
    }
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
            }
        ],
    }
    for service, secret_names in readable.items():
        role = r[f"{service}ExecutionRole"]
        assert _policy(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]) == trust
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["logs-and-secrets"]
        document = _policy(iam.get_role_policy(RoleName=role, PolicyName="logs-and-secrets")["PolicyDocument"])
        log_statement, secret_statement = document["Statement"]
        (group,) = logs.describe_log_groups(logGroupNamePrefix=r[f"{service}LogGroup"])["logGroups"]
        assert log_statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert group["arn"].startswith(log_statement["Resource"])
        assert secret_statement["Action"] == "secretsmanager:GetSecretValue"
        assert secret_statement["Resource"] == [stand_in_for(name) for name in secret_names]
    task_role = r["TaskRole"]
    assert _policy(iam.get_role(RoleName=task_role)["Role"]["AssumeRolePolicyDocument"]) == trust
    assert iam.list_role_policies(RoleName=task_role)["PolicyNames"] == []
    assert iam.list_attached_role_policies(RoleName=task_role)["AttachedPolicies"] == []
    pull = iam.get_policy(PolicyArn=r["ImagePullPolicy"])["Policy"]
    document = iam.get_policy_version(PolicyArn=r["ImagePullPolicy"], VersionId=pull["DefaultVersionId"])
    assert _policy(document["PolicyVersion"]["Document"])["Statement"] == [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/*",
        },
    ]
    brokers_role = r["KafkaBootstrapBrokersRole"]
    document = _policy(
        iam.get_role_policy(RoleName=brokers_role, PolicyName="read-bootstrap-brokers")["PolicyDocument"]
    )
    assert document["Statement"][0] == {
        "Effect": "Allow",
        "Action": "kafka:GetBootstrapBrokers",
        "Resource": stand_in_for("KafkaCluster"),
    }


def test_log_groups_keep_logs_for_the_retention_period(deployed: Any) -> None:
    logs = deployed.client("logs")
    groups = {
        group["logGroupName"]: group.get("retentionInDays")
        for prefix in ("/ecs/patient-management/", "/msk/patient-management/", "/lambda/patient-management/")
        for group in logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]
    }
    assert groups == {
        **{f"/ecs/patient-management/{name}": 30 for name, _ in SERVICES.values()},
        "/msk/patient-management/brokers": 30,
        "/lambda/patient-management/kafka-bootstrap-brokers": 30,
    }


def test_bootstrap_brokers_function_exists_with_its_role(deployed: Any) -> None:
    function = deployed.client("lambda").get_function(FunctionName=deployed.resources["KafkaBootstrapBrokersFunction"])
    configuration = function["Configuration"]
    assert (configuration["Runtime"], configuration["Handler"]) == ("python3.13", "index.handler")
    assert configuration["Role"].endswith(f"role/{deployed.resources['KafkaBootstrapBrokersRole']}")
