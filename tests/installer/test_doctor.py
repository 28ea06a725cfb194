"""altkraft-install doctor on a staged install: config, secrets, database, queue, SMTP relay
(a real aiosmtpd sink, plain and STARTTLS), disk, DNS summary (a real DNS server)."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from altkraft_installer.cli import cli
from tests.conftest import QUEUE_KIND, REDIS_URL
from tests.smtp_sink import SmtpSink, smtp_sink  # noqa: F401  (fixture)


def staged(tmp_path, port: int) -> str:
    root = tmp_path / "root"
    args = ["install", "--root", str(root), "--yes", "--altkraft-bin", "/usr/bin/true",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--smtp-security", "none"]
    if QUEUE_KIND == "redis":
        args += ["--queue-backend", "redis", "--redis-url", REDIS_URL]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return str(root)


def doctor(root, *extra):
    result = CliRunner().invoke(cli, ["doctor", "--root", root, "--json", *extra])
    return result.exit_code, json.loads(result.output)


def test_healthy_install_passes(tmp_path, smtp_sink):  # noqa: F811
    code, report = doctor(staged(tmp_path, smtp_sink.port), "--no-dns")
    statuses = {name: r["status"] for name, r in report.items()}
    assert {k: v for k, v in statuses.items() if k != "disk"} == {
        "config": "pass", "secrets": "pass", "database": "pass", "queue": "pass",
        f"smtp 127.0.0.1:{smtp_sink.port}": "pass"}
    assert code == 0


def test_readable_secret_key_fails(tmp_path, smtp_sink):  # noqa: F811
    root = staged(tmp_path, smtp_sink.port)
    os.chmod(os.path.join(root, "etc/altkraft/secret_key"), 0o644)
    code, report = doctor(root, "--no-dns")
    assert report["secrets"]["status"] == "fail"
    assert "has mode 0644 (at most 0600)" in report["secrets"]["detail"]
    assert code == 1


def test_relay_that_does_not_answer_fails(tmp_path, smtp_sink):  # noqa: F811
    root = staged(tmp_path, smtp_sink.port)
    smtp_sink.stop()
    code, report = doctor(root, "--no-dns")
    assert report[f"smtp 127.0.0.1:{smtp_sink.port}"]["status"] == "fail"
    assert code == 1


def test_starttls_relay_is_upgraded(tmp_path):
    sink = SmtpSink(tls="starttls").start()
    try:
        root = staged(tmp_path, sink.port)
        config = os.path.join(root, "etc/altkraft/config.toml")
        with open(config) as handle:
            text = handle.read().replace('security = "none"', 'security = "starttls"\nverify_tls = false')
        with open(config, "w") as handle:
            handle.write(text)
        _, report = doctor(root, "--no-dns")
    finally:
        sink.stop()
    assert report[f"smtp 127.0.0.1:{sink.port}"]["detail"].endswith("answers EHLO, STARTTLS ok")


def test_broken_config_is_named(tmp_path, smtp_sink):  # noqa: F811
    root = staged(tmp_path, smtp_sink.port)
    config = os.path.join(root, "etc/altkraft/config.toml")
    with open(config, "a") as handle:
        handle.write('\n[server]\nworkers = "many"\n')
    code, report = doctor(root)
    assert report["config"]["status"] == "fail"
    assert code == 1


@pytest.mark.usefixtures("smtp_sink")
def test_dns_summary_per_sending_domain(tmp_path, smtp_sink, dns_server):  # noqa: F811
    root = staged(tmp_path, smtp_sink.port)
    CliRunner().invoke(cli, ["dkim", "generate", "--domain", "example.com", "--selector", "ak1", "--root", root])
    dns_server.serve({"example.com": {"TXT": ["v=spf1 -all"]}})
    code, report = doctor(root, "--nameserver", dns_server.address, "--ip", "192.0.2.10")
    assert report["dns example.com"]["status"] == "fail"
    assert "dkim missing" in report["dns example.com"]["detail"]
    assert report["dns example.com"]["fix"] == "altkraft-install check-dns --domain example.com"
    assert code == 1
