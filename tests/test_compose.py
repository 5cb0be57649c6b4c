"""The production compose stack, checked by parsing (no Docker engine here): healthchecks,
restart policies, pinned images, named volumes, no inline secrets, every variable documented.
Also the deploy files it mounts (the store's users are defined once, for compose and for
`cryptobot up`) and the CI workflows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cryptobot_core.launcher.credentials import USERS_FILE, app_users
from cryptobot_core.launcher.specs import DEV_INSTANCE

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; "$${" is an escape.
VAR_RE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_KEY_RE = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY", re.IGNORECASE)
REQUIRED_SERVICES = {
    "kafka",
    "mongo",
    "postgres",
    "dagster-webserver",
    "dagster-daemon",
    "api",
    "dashboard",
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def documented() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution, enough for image names."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op and op.startswith(":") and not value:
            value = None
        if value is None:
            return arg if op and op.endswith("-") else ""
        return value

    return VAR_RE.sub(sub, text)


def strings(node: Any) -> list[str]:
    """Every string in a YAML tree (keys excluded)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_stack_has_every_production_service(services: dict[str, Any]) -> None:
    assert set(services) >= REQUIRED_SERVICES


def test_every_service_has_a_healthcheck_and_restart_policy(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_images_are_pinned(services: dict[str, Any]) -> None:
    env = documented()
    for name, service in services.items():
        image = interpolate(service["image"], env)
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: untagged image {image}"
        tag = image.rsplit(":", 1)[1]
        assert tag not in ("latest", "stable", "") and re.search(r"\d", tag), (
            f"{name}: image {image} is not pinned to a version"
        )


def test_kafka_runs_in_kraft_mode_and_mongo_8_with_auth(services: dict[str, Any]) -> None:
    assert "zookeeper" not in " ".join(services).lower()
    kafka = environment(services["kafka"])
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka
    assert services["mongo"]["image"].startswith("mongo:8.")
    mongo = environment(services["mongo"])
    assert VAR_RE.fullmatch(mongo["MONGO_INITDB_ROOT_PASSWORD"])
    mounts = " ".join(services["mongo"]["volumes"])
    assert "./deploy/mongo-init.js:/docker-entrypoint-initdb.d/" in mounts


def test_no_secret_is_written_inline(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_KEY_RE.search(key):
                assert VAR_RE.fullmatch(value), f"{name}: {key} must be a ${{VAR}} from .env"
                assert VAR_RE.fullmatch(value).group(2) in (":?", "?"), (  # type: ignore[union-attr]
                    f"{name}: {key} must fail when unset (${{VAR:?...}}), not default"
                )
    uris_with_credentials = 0
    for text in strings(compose):
        # Credentials inside URIs must be references too: scheme://user:password@host
        masked = VAR_RE.sub("VARREF", text)
        for user, password in re.findall(r"://([^:/@\s]+):([^@/\s]+)@", masked):
            uris_with_credentials += 1
            assert (user, password) == ("VARREF", "VARREF"), f"inline credential in {text}"
    assert uris_with_credentials >= 2  # the app and read-only MongoDB URIs were checked


def test_every_variable_is_documented_in_env_example(compose: dict[str, Any]) -> None:
    used = {m.group(1) for text in strings(compose) for m in VAR_RE.finditer(text)}
    assert used, "the compose file reads nothing from .env?"
    missing = used - set(documented())
    assert missing == set(), f"document these in .env.example: {sorted(missing)}"


def test_passwords_are_left_empty_in_env_example() -> None:
    for name, value in documented().items():
        if SECRET_KEY_RE.search(name):
            assert value == "", f"{name}: .env.example must not ship a password"


def test_data_lives_on_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name in ("kafka", "mongo", "postgres"):
        mounts = compose["services"][name].get("volumes") or []
        sources = [m.split(":", 1)[0] for m in mounts if isinstance(m, str)]
        named = [s for s in sources if not s.startswith((".", "/", "~"))]
        assert named, f"{name} keeps its data in the container"
        assert set(named) <= declared, f"{name}: volumes {named} not declared"
    for name, service in compose["services"].items():
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
                assert mount.endswith(":ro"), f"{name}: config mount {mount} should be read-only"


def test_project_services_build_the_project_image(compose: dict[str, Any]) -> None:
    for name in ("dagster-webserver", "dagster-daemon", "api", "dashboard"):
        service = compose["services"][name]
        assert service["build"]["context"] == "."
        assert (REPO / service["build"]["dockerfile"]).exists()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "openjdk-17-jre" in dockerfile


def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in compose["services"], f"{name} depends on unknown {dep}"
            assert cond["condition"] == "service_healthy", f"{name} -> {dep}"


def test_dagster_instance_uses_postgres_and_the_run_queue() -> None:
    prod = load(REPO / "deploy" / "dagster.yaml")
    db = prod["storage"]["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_POSTGRES_PASSWORD"}
    assert prod["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert prod["concurrency"]["runs"]["max_concurrent_runs"] == 8
    assert prod["concurrency"]["pools"]["default_limit"] == 2
    compose_env = environment(load(COMPOSE)["services"]["dagster-daemon"])
    for ref in (
        "DAGSTER_POSTGRES_HOST",
        "DAGSTER_POSTGRES_DB",
        "DAGSTER_POSTGRES_USER",
        "DAGSTER_POSTGRES_PASSWORD",
    ):
        assert ref in compose_env, f"dagster.yaml reads {ref} but compose does not set it"
    dev = load(DEV_INSTANCE)
    assert "storage" not in dev  # SQLite in DAGSTER_HOME
    assert dev["concurrency"] == prod["concurrency"]


def test_mongo_init_script_reads_the_user_definitions_the_launcher_uses() -> None:
    script = (REPO / "deploy" / "mongo-init.js").read_text()
    mongo = load(COMPOSE)["services"]["mongo"]
    env = environment(mongo)
    for var in re.findall(r"process\.env\.([A-Z_]+)", script):
        assert var in env, var
    # The one definitions file is mounted where the script looks for it.
    mounts = dict(m.rsplit(":", 1)[0].split(":", 1) for m in mongo["volumes"] if m.startswith("./"))
    assert mounts[f"./{USERS_FILE.relative_to(REPO)}"] == env["CRYPTOBOT_MONGO_USERS_FILE"]
    definitions = json.loads(USERS_FILE.read_text())["users"]
    for user in definitions:
        # The compose defaults of the user names are the definitions' defaults.
        assert env[user["name_env"]] == f"${{{user['name_env']}:-{user['default_name']}}}"
        assert user["password_env"] in env


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run mongo-init.js")
def test_mongo_init_script_creates_exactly_the_launchers_users(tmp_path: Path) -> None:
    """Run the real init script under node with a recording stand-in for mongosh's `db`."""
    shim = tmp_path / "run.js"
    shim.write_text(
        "const created = [];\n"
        "globalThis.db = { getSiblingDB: (name) => ({ createUser: (u) =>"
        " created.push({ db: name, ...u }) }) };\n"
        "globalThis.print = () => {};\n"
        f"require({json.dumps(str(REPO / 'deploy' / 'mongo-init.js'))});\n"
        "process.stdout.write(JSON.stringify(created));\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "CRYPTOBOT_MONGO_USERS_FILE": str(USERS_FILE),
        "CRYPTOBOT_MONGO_DB": "market",
        "MONGO_APP_USER": "writer",
        "MONGO_APP_PASSWORD": "pw-app",
        "MONGO_READONLY_PASSWORD": "pw-ro",
    }
    out = subprocess.run(
        ["node", str(shim)], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    created = json.loads(out.stdout)
    names = {"app": "writer", "readonly": "cryptobot_ro"}
    passwords = {"app": "pw-app", "readonly": "pw-ro"}
    expected = [
        {"db": "admin", "user": names[u.key], "pwd": passwords[u.key], "roles": u.roles("market")}
        for u in app_users()
    ]
    assert created == expected
    # The launcher's users: readWrite for writers, read for readers, on the db and its twin.
    assert {u.key: u.roles("market") for u in app_users()} == {
        "app": [{"role": "readWrite", "db": "market"}, {"role": "readWrite", "db": "market_sim"}],
        "readonly": [{"role": "read", "db": "market"}, {"role": "read", "db": "market_sim"}],
    }

    missing = subprocess.run(
        ["node", str(shim)],
        env={k: v for k, v in env.items() if k != "MONGO_READONLY_PASSWORD"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and "MONGO_READONLY_PASSWORD is not set" in missing.stderr


def test_ci_runs_lint_make_test_and_the_image_build() -> None:
    ci = load(REPO / ".github" / "workflows" / "ci.yml")
    steps = [step for job in ci["jobs"].values() for step in job.get("steps", [])]
    runs = "\n".join(str(step.get("run", "")) for step in steps)
    assert "ruff check" in runs and "make test" in runs
    assert "openjdk-17" in runs and "chromium" in runs
    assert any("docker/build-push-action" in str(step.get("uses", "")) for step in steps)
    release = load(REPO / ".github" / "workflows" / "release.yml")
    # PyYAML reads the bare key `on` as True.
    trigger = release.get("on", release.get(True))
    assert any(tag.startswith("v") for tag in trigger["push"]["tags"])
    release_steps = [s for job in release["jobs"].values() for s in job.get("steps", [])]
    pushes = [s for s in release_steps if "docker/build-push-action" in str(s.get("uses", ""))]
    assert pushes and all(s["with"]["push"] in (True, "true") for s in pushes)
    assert "ghcr.io" in (REPO / ".github" / "workflows" / "release.yml").read_text()


def test_ci_runs_the_suite_against_real_mongodb_and_kafka() -> None:
    """The integration job: make test with both test variables on MongoDB 8 and Kafka."""
    job = load(REPO / ".github" / "workflows" / "ci.yml")["jobs"]["integration"]
    images = {name: svc["image"] for name, svc in job["services"].items()}
    assert images["mongo"].startswith("mongo:8") and images["kafka"].startswith("apache/kafka")
    (run,) = [s for s in job["steps"] if s.get("run") == "make test"]
    env = run["env"]
    assert env["CRYPTOBOT_TEST_MONGO_URI"].startswith("mongodb://mongo:27017")
    assert env["CRYPTOBOT_TEST_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # The broker advertises the name the job's container reaches it by.
    kafka_env = job["services"]["kafka"]["env"]
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_a_deployment_streams_from_its_first_minute(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The daemon's settings, as compose resolves them, start the supervisor and repair."""
    import dagster as dg

    from cryptobot_assets.stream.definitions import build_defs
    from cryptobot_core.settings import load_settings

    env = {k: interpolate(v, {}) for k, v in environment(services["dagster-daemon"]).items()}
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("CRYPTOBOT_") and key != "CRYPTOBOT_DATA_DIR":
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    defs = build_defs(load_settings(data_dir=tmp_path))
    assert defs.get_sensor_def("stream_supervisor").default_status == (
        dg.DefaultSensorStatus.RUNNING
    )
    assert defs.get_schedule_def("stream_repair_schedule").default_status == (
        dg.DefaultScheduleStatus.RUNNING
    )


def test_the_dagster_ui_is_published_on_loopback_only(services: dict[str, Any]) -> None:
    ports = [interpolate(str(p), {}) for p in services["dagster-webserver"]["ports"]]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports


def test_the_producer_spool_survives_a_container_restart(compose: dict[str, Any]) -> None:
    env = environment(compose["services"]["dagster-daemon"])
    data_dir = env["CRYPTOBOT_DATA_DIR"]
    mounts = compose["services"]["dagster-daemon"].get("volumes") or []
    named = {m.split(":")[1]: m.split(":")[0] for m in mounts if not m.startswith(".")}
    assert named.get(data_dir) in set(compose["volumes"]), f"{data_dir} is not on a volume"


def test_links_the_dashboard_shows_are_reachable_from_a_browser(services: dict[str, Any]) -> None:
    url = interpolate(environment(services["dashboard"])["CRYPTOBOT_DAGSTER_URL"], {})
    host = url.split("://", 1)[1].split(":")[0].split("/")[0]
    assert host in {"localhost", "127.0.0.1"}, f"{url} names a container, not a browser address"


def test_each_service_gets_only_the_credentials_and_endpoints_it_needs(
    services: dict[str, Any],
) -> None:
    for name in ("api", "dashboard"):
        env = environment(services[name])
        assert not [k for k in env if "KAFKA" in k], f"{name} gets Kafka settings"
        assert "MONGO_APP_PASSWORD" not in str(env), f"{name} gets the read-write password"
    assert "MONGO_READONLY_PASSWORD" in environment(services["api"])["CRYPTOBOT_MONGO_URI"]
    assert "CRYPTOBOT_MONGO_URI" not in environment(services["dashboard"])
    for name in ("dagster-webserver", "dagster-daemon"):
        env = environment(services[name])
        assert env["CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert "MONGO_APP_PASSWORD" in env["CRYPTOBOT_MONGO_URI"]
