"""Static checks of docker/ (no Docker engine here): the Dockerfiles parse, their image names,
Python and package pins agree with pyproject.toml and the Makefile, every path they copy exists,
and the Kubernetes files parse and share one ReadWriteMany volume for the exchange and the course."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from conftest import REPO

DOCKER = REPO / "docker"
IMAGES = {"singleuser": "edsgrade/singleuser", "grader": "edsgrade/grader", "hub": "edsgrade/hub"}
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
KNOWN = {"FROM", "LABEL", "RUN", "COPY", "ENV", "USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD", "VOLUME",
         "ARG", "COMMENT"}


def pins() -> dict[str, str]:
    """Exact pins ``name==version`` of pyproject.toml (all extras) and of the Makefile (torch)."""
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += extra
    reqs += re.findall(r"pip install --quiet (\S+==\S+)", (REPO / "Makefile").read_text())
    out = {}
    for r in reqs:
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^;\s]+)$", r.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def parse(name: str) -> DockerfileParser:
    parser = DockerfileParser(path=str(DOCKER / name / "Dockerfile"))
    assert parser.structure, f"docker/{name}/Dockerfile is empty"
    return parser


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_parses_with_known_instructions(name):
    parser = parse(name)
    instructions = [i["instruction"] for i in parser.structure]
    assert instructions[0] in ("FROM", "COMMENT") and "FROM" in instructions
    assert set(instructions) <= KNOWN, set(instructions) - KNOWN
    assert "CMD" in instructions


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_name_version_and_python_agree_with_pyproject(name):
    parser = parse(name)
    assert parser.labels["org.opencontainers.image.title"] == IMAGES[name]
    assert parser.labels["org.opencontainers.image.version"] == VERSION
    assert f"-t {IMAGES[name]}:{VERSION}" in parser.content  # the build command in its header
    minimum = re.match(r">=(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    base = parser.baseimage
    m = re.match(r"python:(\d+\.\d+)", base)
    assert m, f"{name}: base image {base} is not a python:X.Y image"
    assert m.group(1) == minimum == "3.11", f"{name}: Python {m.group(1)} but pyproject asks >={minimum} (3.11 here)"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_package_pins_agree_with_pyproject_and_makefile(name):
    known = pins()
    found = re.findall(r"([A-Za-z0-9_.\-]+)==([0-9][^\s\"']*)", parse(name).content)
    assert found, f"{name}: no pinned package"
    for package, version in found:
        assert package.lower() in known, f"{name}: {package}=={version} is not pinned in pyproject.toml"
        assert known[package.lower()] == version, f"{name}: {package}=={version}, pyproject: {known[package.lower()]}"
    assert {("torch", "2.13.0"), ("jupyterhub", "6.1.1"), ("nbgrader", "0.9.6")} <= set(found)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_copied_path_exists(name):
    copies = [i["value"] for i in parse(name).structure if i["instruction"] == "COPY"]
    assert copies
    for value in copies:
        *sources, _dest = value.split()
        for src in sources:
            if src.startswith("--"):
                continue
            assert (REPO / src).exists(), f"docker/{name}/Dockerfile copies {src}, which does not exist"


def test_z2jh_values_share_one_rwx_volume_for_exchange_and_course():
    values = yaml.safe_load((DOCKER / "z2jh-values.yaml").read_text())
    claim = yaml.safe_load((DOCKER / "k8s" / "shared-volume.yaml").read_text())
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    name = claim["metadata"]["name"]
    single = values["singleuser"]
    assert single["image"] == {"name": IMAGES["singleuser"], "tag": VERSION}
    volumes = {v["name"]: v for v in single["storage"]["extraVolumes"]}
    mounts = {m["mountPath"]: m for m in single["storage"]["extraVolumeMounts"]}
    exchange = mounts["/srv/nbgrader/exchange"]
    assert volumes[exchange["name"]]["persistentVolumeClaim"]["claimName"] == name and exchange["subPath"] == "exchange"
    assert not any(m.get("subPath") == "course" for m in mounts.values()), "students must not mount the course"
    grader, service = yaml.safe_load_all((DOCKER / "k8s" / "grader.yaml").read_text())
    spec = grader["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == f"{IMAGES['grader']}:{VERSION}"
    gmounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert gmounts["/srv/edsgrade/eds"]["subPath"] == "course" and gmounts["/srv/nbgrader/exchange"]["subPath"] == "exchange"
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == name
    # the hub reaches the course service where the grader's Service listens
    port = service["spec"]["ports"][0]["port"]
    assert values["hub"]["services"]["eds"]["url"] == f"http://{service['metadata']['name']}:{port}"
    assert set(values["hub"]["loadRoles"]) >= {"formgrade-eds", "nbgrader-eds"}
    for name, code in values["hub"]["extraConfig"].items():
        compile(code, f"hub.extraConfig.{name}", "exec")


def loaded(text: str) -> dict:
    """The configuration a config file sets, as traitlets loads it."""
    from traitlets.config import Config

    config = Config()
    exec(compile(text, "nbgrader_config.py", "exec"), {"get_config": lambda: config})
    return {section: dict(values) for section, values in config.items()}


def test_student_image_config_matches_the_hub_configuration():
    """The single-user image's nbgrader and Jupyter configuration is the one `edsgrade hub` writes."""
    from edsgrade.hub.settings import HubSettings
    from edsgrade.hub.system import STUDENT_HIDDEN_LAB_EXTENSIONS, STUDENT_HIDDEN_SERVER_EXTENSIONS, nbgrader_config

    image = (DOCKER / "singleuser" / "nbgrader_config.py").read_text()
    hub = nbgrader_config(HubSettings(exchange_root="/srv/nbgrader/exchange"), student=True)
    assert loaded(image) == loaded(hub)
    server = json.loads((DOCKER / "singleuser" / "jupyter_server_config.json").read_text())
    assert {k for k, v in server["ServerApp"]["jpserver_extensions"].items() if not v} == set(STUDENT_HIDDEN_SERVER_EXTENSIONS)
    page = json.loads((DOCKER / "singleuser" / "page_config.json").read_text())
    assert set(page["disabledExtensions"]) == set(STUDENT_HIDDEN_LAB_EXTENSIONS)
