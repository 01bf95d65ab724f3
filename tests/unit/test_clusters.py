"""Cluster configs pass Ray's own cluster-config validation and open nothing to the world."""

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from support import ROOT

CONFIGS = sorted((ROOT / "clusters").glob("*.yaml"))


def test_three_clusters_exist():
    assert {p.name for p in CONFIGS} >= {"aws-gpu.yaml", "gcp-gpu.yaml", "onprem.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_ray_validates_cluster_config(path):
    cfg = yaml.safe_load(path.read_text())
    validate_config(prepare_config(cfg))
    setup = " ".join(cfg["setup_commands"])
    assert "pip install" in setup and "ctx-sweep" in setup  # setup installs the project


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_no_port_open_to_the_world(path):
    cfg = yaml.safe_load(path.read_text())
    text = path.read_text()
    assert "0.0.0.0/0" not in text and "::/0" not in text
    for cmd in cfg["head_start_ray_commands"]:
        if "--head" in cmd:
            assert "--dashboard-host=127.0.0.1" in cmd
    for cmd in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        if "ray start" in cmd:
            assert "RAY_AUTH_MODE=token" in cmd  # token authentication stays on
    assert "~/.ray/auth_token" in cfg["file_mounts"]
    for perm in cfg["provider"].get("security_group", {}).get("IpPermissions", []):
        assert (perm["FromPort"], perm["ToPort"]) == (22, 22)
