"""cluster.yaml is valid for Ray's cluster launcher and installs what the README installs."""

import json
import re
import tomllib
from importlib.resources import files

import pytest
import yaml
from jsonschema import ValidationError, validate
from packaging.requirements import Requirement

from tests.conftest import REPO

CLUSTER_YAML = REPO / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def rays_schema() -> dict:
    """The JSON schema `ray up` checks a cluster config against (Ray's package data)."""
    return json.loads(files("ray.autoscaler").joinpath("ray-schema.json").read_text())


def test_validates_against_rays_schema(config, rays_schema):
    validate(config, rays_schema)


def test_schema_check_is_real(config, rays_schema):
    broken = {**config, "available_node_types": {"head": {"resources": {}}}}
    with pytest.raises(ValidationError, match="node_config"):
        validate(broken, rays_schema)


def test_head_cpu_and_gpu_worker_groups(config):
    groups = config["available_node_types"]
    assert config["head_node_type"] in groups
    workers = [g for name, g in groups.items() if name != config["head_node_type"]]
    assert len(workers) >= 2
    for group in workers:
        assert 0 <= group["min_workers"] <= group["max_workers"]
    assert any("g5" in g["node_config"]["InstanceType"] for g in workers)  # a GPU group


def test_setup_installs_like_the_readme(config):
    readme = (REPO / "README.md").read_text()
    install = re.search(
        r"python3\.11 -m venv \.venv && \. \.venv/bin/activate && pip install -e \.", readme
    )
    assert install, "README's set-up command changed: update cluster.yaml with it"
    assert any(install.group(0) in cmd for cmd in config["setup_commands"])
    assert "." in config["file_mounts"].values()  # the code itself is mounted


def test_every_node_runs_ray_with_token_auth(config):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), key
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head


def test_every_node_runs_rays_image_of_our_ray_and_python(config):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    ray = next(
        Requirement(d) for d in pyproject["project"]["dependencies"] if d.startswith("ray[")
    )
    python = re.search(r">=3\.(\d+)", pyproject["project"]["requires-python"]).group(1)
    image = config["docker"]["image"]  # the head's and CPU workers'
    ray_version = re.fullmatch(rf"rayproject/ray:([\d.]+)-py3{python}-cpu", image).group(1)
    assert ray.specifier.contains(ray_version), (image, str(ray))  # a Ray the project takes
    image = f"rayproject/ray:{ray_version}-py3{python}"
    for name, group in config["available_node_types"].items():
        gpu = "g5" in group["node_config"]["InstanceType"]
        worker_image = group.get("docker", {}).get("worker_image", config["docker"]["image"])
        assert worker_image == f"{image}-{'gpu' if gpu else 'cpu'}", name
