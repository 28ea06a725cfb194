"""altkraft-install dkim generate: key file, TXT record, registration in config.toml."""
from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from altkraft_installer.cli import cli
from altkraft_onprem import config as config_module
from altkraft_onprem.delivery import dkimkeys


@pytest.fixture()
def root(tmp_path):
    root = tmp_path / "root"
    result = CliRunner().invoke(cli, ["install", "--root", str(root), "--yes", "--altkraft-bin", "/usr/bin/true"])
    assert result.exit_code == 0, result.output
    return root


def generate(root, *extra):
    result = CliRunner().invoke(cli, ["dkim", "generate", "--domain", "Example.com", "--selector", "ak1",
                                      "--root", str(root), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def keys(root):
    return config_module.load(root / "etc/altkraft/config.toml", environ={})["dkim.keys"]


def test_writes_an_rsa_2048_key_readable_by_owner_only(root):
    generate(root)
    path = root / "etc/altkraft/dkim/ak1.example.com.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = dkimkeys.load_private(path.read_bytes())
    assert key.key_size == 2048


def test_prints_the_txt_record_split_into_255_byte_strings(root):
    output = generate(root)
    public = dkimkeys.public_key((root / "etc/altkraft/dkim/ak1.example.com.key").read_bytes())
    assert f"TXT value: {public.txt}" in output
    line = next(line for line in output.splitlines() if line.startswith("ak1._domainkey.example.com. IN TXT"))
    strings = line.split("( ", 1)[1].rsplit(" )", 1)[0].split('" "')
    assert all(len(s.strip('"')) <= 255 for s in strings) and len(strings) == 2
    assert "".join(s.strip('"') for s in strings) == public.txt


def test_registers_the_key_in_the_config(root):
    generate(root)
    assert keys(root) == [{"domain": "example.com", "selector": "ak1",
                           "key_file": "/etc/altkraft/dkim/ak1.example.com.key", "algorithm": "rsa-sha256"}]
    assert stat.S_IMODE(os.stat(root / "etc/altkraft/config.toml").st_mode) == 0o640


def test_running_again_keeps_the_key_and_registers_once(root):
    generate(root)
    before = (root / "etc/altkraft/dkim/ak1.example.com.key").read_bytes()
    output = generate(root)
    assert "kept existing" in output
    assert (root / "etc/altkraft/dkim/ak1.example.com.key").read_bytes() == before
    assert len(keys(root)) == 1


def test_second_selector_sits_beside_the_old_one_for_rotation(root):
    generate(root)
    CliRunner().invoke(cli, ["dkim", "generate", "--domain", "example.com", "--selector", "ak2", "--root", str(root)])
    assert [k["selector"] for k in keys(root)] == ["ak1", "ak2"]
    assert (root / "etc/altkraft/dkim/ak1.example.com.key").exists()


def test_ed25519_key_at_its_own_selector(root):
    output = generate(root, "--ed25519")
    assert [(k["selector"], k["algorithm"]) for k in keys(root)] == [
        ("ak1", "rsa-sha256"), ("ak1-ed25519", "ed25519-sha256")]
    assert "ak1-ed25519._domainkey.example.com. IN TXT \"v=DKIM1; k=ed25519; p=" in output


def test_bad_domain_is_refused(root):
    result = CliRunner().invoke(cli, ["dkim", "generate", "--domain", "exa mple.com", "--selector", "ak1",
                                      "--root", str(root)])
    assert result.exit_code == 2
    assert "--domain 'exa mple.com'" in result.output


def test_without_an_install_it_says_what_to_do(tmp_path):
    result = CliRunner().invoke(cli, ["dkim", "generate", "--domain", "example.com", "--selector", "ak1",
                                      "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "run `altkraft-install install` first" in result.output
