"""`altkraft-install`: install, upgrade, uninstall, dkim generate, check-dns, doctor.

Exit status: 0 ok, 1 a check failed, 2 an operator mistake (bad flag, config or answers file),
always with one line saying what is wrong.
"""
from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import fields

import click

from altkraft_onprem import config as config_module
from altkraft_onprem.delivery import dnscheck
from altkraft_onprem.delivery.dnscheck import Check

from . import steps
from .layout import CONFIG, Layout
from .steps import Answers, InstallError

EXIT_FAIL = 1
EXIT_USAGE = 2


class Fatal(click.ClickException):
    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"altkraft-install: {self.message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Install, upgrade and check an ALTKRAFT On-Premise host."""


root_option = click.option("--root", type=click.Path(file_okay=False), default=None,
                           help="Stage every path under this directory instead of the live system.")

QUESTIONS = [
    ("public_url", "URL staff and recipients use to reach this server", False),
    ("bind", "Address:port the service listens on", False),
    ("database_url", "Database URL (empty: SQLite in /var/lib/altkraft)", False),
    ("queue_backend", "Queue backend (sqlite or redis)", False),
    ("redis_url", "Redis URL (for the redis queue)", False),
    ("smtp_host", "SMTP relay host (empty: configure later)", False),
    ("smtp_port", "SMTP relay port", False),
    ("smtp_security", "SMTP security (none, starttls, tls)", False),
    ("smtp_username", "SMTP username (empty: no AUTH)", False),
    ("smtp_password", "SMTP password", True),
    ("helo", "HELO name of the sending host (empty: its FQDN)", False),
]
ANSWER_NAMES = [f.name for f in fields(Answers)]


def read_answers(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise Fatal(f"--answers {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise Fatal(f"--answers {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(ANSWER_NAMES))
    if unknown:
        raise Fatal(f"--answers {path}: unknown key {unknown[0]!r} (known: {', '.join(ANSWER_NAMES)})")
    return data


def collect_answers(given: dict, answers_file: str | None, assume_yes: bool) -> Answers:
    values = read_answers(answers_file)
    values.update({k: v for k, v in given.items() if v is not None})
    defaults = Answers()
    if not assume_yes:
        for name, question, secret in QUESTIONS:
            if name in values:
                continue
            if name == "redis_url" and values.get("queue_backend", defaults.queue_backend) != "redis":
                continue
            if name.startswith("smtp_") and name != "smtp_host" and not values.get("smtp_host"):
                continue
            if name == "smtp_password" and not values.get("smtp_username"):
                continue
            values[name] = click.prompt(question, default=getattr(defaults, name), hide_input=secret,
                                        show_default=not secret, type=type(getattr(defaults, name)))
    try:
        answers = Answers(**values)
        answers.smtp_port = int(answers.smtp_port)
    except (TypeError, ValueError) as exc:
        raise Fatal(f"answers: {exc}") from None
    if answers.queue_backend not in ("sqlite", "redis"):
        raise Fatal(f"queue_backend = {answers.queue_backend!r}: expected 'sqlite' or 'redis'")
    return answers


def _answer_options(fn):
    for name, question, secret in reversed(QUESTIONS):
        if secret:
            continue        # never on a command line (ps, shell history): prompt or answers file
        flag = "--" + name.replace("_", "-")
        fn = click.option(flag, name, default=None, help=question + ".")(fn)
    return fn


def _outcome(outcome: steps.Outcome, idle: str) -> None:
    if not outcome.changes:
        click.echo(idle)
    for note in outcome.notes:
        click.echo(f"note: {note}")


@cli.command()
@root_option
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Ask nothing: use flags, answers file, defaults.")
@click.option("--answers", "answers_file", type=click.Path(dir_okay=False),
              help="TOML file with answers (keys: the flag names with underscores).")
@click.option("--altkraft-bin", help="The `altkraft` command the units run (default: next to this one).")
@click.option("--no-start", is_flag=True, help="Do not enable or start the service.")
@_answer_options
def install(root, assume_yes, answers_file, altkraft_bin, no_start, **given) -> None:
    """Create user, config, secret key, data directory, units; migrate; start; print the URL."""
    layout = Layout.at(root)
    existing = layout.path(CONFIG).exists()
    # An existing config is kept as it is: nothing to ask (edit the file to change settings).
    answers = collect_answers(given, answers_file, assume_yes or existing)
    click.echo(f"Installing ALTKRAFT On-Premise{f' under {layout.root}' if layout.staged else ''}")
    if existing:
        click.echo(f"keeping the existing {layout.path(CONFIG)} (edit it to change settings)")
    try:
        outcome = steps.install(layout, answers, altkraft_bin=altkraft_bin, start=not no_start,
                                say=click.echo)
    except InstallError as exc:
        raise Fatal(str(exc)) from None
    _outcome(outcome, "nothing to change: already installed as configured")
    click.echo(f"ALTKRAFT URL: {outcome.url}")
    if outcome.setup_link:
        click.echo(f"Create the first administrator at: {outcome.setup_link}")


@cli.command()
@root_option
@click.option("--altkraft-bin", help="The `altkraft` command the units run (default: as installed).")
def upgrade(root, altkraft_bin) -> None:
    """Migrate the database and refresh the units; config and data are kept."""
    layout = Layout.at(root)
    try:
        outcome = steps.upgrade(layout, altkraft_bin=altkraft_bin, say=click.echo)
    except InstallError as exc:
        raise Fatal(str(exc)) from None
    _outcome(outcome, "nothing to change: already up to date")
    if outcome.setup_link:
        click.echo(f"No administrator yet; create one at: {outcome.setup_link}")


@cli.command()
@root_option
@click.option("--purge", is_flag=True, help="Also delete /etc/altkraft and /var/lib/altkraft.")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask before --purge.")
def uninstall(root, purge, assume_yes) -> None:
    """Remove the units and the user; keep config and data unless --purge."""
    layout = Layout.at(root)
    if purge and not assume_yes:
        click.confirm("Delete the configuration, keys and all data for good?", abort=True)
    outcome = steps.uninstall(layout, purge=purge, say=click.echo)
    _outcome(outcome, "nothing to change: not installed")


# --- dkim -----------------------------------------------------------------------------------

@cli.group()
def dkim() -> None:
    """DKIM signing keys."""


@dkim.command("generate")
@click.option("--domain", required=True, help="Signing domain (d=), e.g. example.com.")
@click.option("--selector", required=True, help="Selector (s=); a new one for each rotation.")
@click.option("--ed25519", is_flag=True, help="Also an Ed25519 key, at selector SELECTOR-ed25519.")
@click.option("--bits", type=click.Choice(["2048", "3072", "4096"]), default="2048", show_default=True)
@click.option("--no-register", is_flag=True, help="Do not add the key to config.toml.")
@root_option
def dkim_generate(domain, selector, ed25519, bits, no_register, root) -> None:
    """Create a key (0600) in /etc/altkraft/dkim/, print its TXT record, register it."""
    from . import dkim as dkim_module

    layout = Layout.at(root)
    wanted = [(selector, "rsa-sha256")] + ([(f"{selector}-ed25519", "ed25519-sha256")] if ed25519 else [])
    try:
        for sel, algorithm in wanted:
            key = dkim_module.generate(layout, domain, sel, algorithm=algorithm, bits=int(bits),
                                       register=not no_register, say=click.echo)
            click.echo(f"{'created' if key.created else 'kept existing'} {key.path} ({algorithm})")
            if key.registered:
                click.echo(f"registered in {layout.path(CONFIG)} as [[dkim.keys]] {domain} / {sel}")
            click.echo(f"Publish this TXT record at {key.txt_name}:")
            click.echo(key.zone_line)
            click.echo(f"TXT value: {key.txt_value}")
    except InstallError as exc:
        raise Fatal(str(exc)) from None
    click.echo("Then run `altkraft-install check-dns --domain "
               f"{domain}` and restart the service. To rotate: generate a new selector beside "
               "this one, publish it, and remove the old [[dkim.keys]] entry once DNS shows it.")


# --- check-dns / doctor ---------------------------------------------------------------------

def _settings_for(layout: Layout, config_path: str | None) -> config_module.Settings | None:
    path = config_path or layout.path(CONFIG)
    try:
        if config_path or layout.path(CONFIG).exists():
            if config_path:
                return config_module.load(path, environ={})
            return steps.load_settings(layout)
    except config_module.ConfigError as exc:
        raise Fatal(str(exc)) from None
    return None


def print_table(results: dict[str, Check]) -> None:
    width = max(len(n) for n in results) + 2
    click.echo(f"{'check'.ljust(width)}{'status'.ljust(8)}detail")
    for name, check in results.items():
        click.echo(f"{name.ljust(width)}{check.status.upper().ljust(8)}{check.detail}")
    fixes = [(n, c.fix) for n, c in results.items() if c.status != "pass" and c.fix]
    if fixes:
        click.echo("\nTo fix, publish or do:")
        for name, fix in fixes:
            for line in fix.splitlines():
                click.echo(f"  [{name}] {line}")


@cli.command("check-dns")
@click.option("--domain", required=True, help="Sending domain (DKIM d= and, by default, From).")
@click.option("--ip", "ips", multiple=True, help="Sending IP (repeat for several; default from config).")
@click.option("--helo", help="HELO name the sending host uses (default: relay helo, or this host's FQDN).")
@click.option("--nameserver", "nameservers", multiple=True, metavar="H[:P]",
              help="Ask this DNS server (repeatable; default: config, then the host's resolvers).")
@click.option("--bounce-domain", help="Return-Path domain (default: --domain).")
@click.option("--from-domain", help="From: domain for DMARC (default: --domain).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="config.toml with the [[dkim.keys]] (default: /etc/altkraft/config.toml).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: ptr, spf, dkim, dmarc, mx, mta_sts, tls_rpt.")
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds per DNS query.")
@root_option
def check_dns(domain, ips, helo, nameservers, bounce_domain, from_domain, config_path, as_json,
              timeout, root) -> None:
    """Check PTR, SPF, DKIM, DMARC, MX, MTA-STS and TLS-RPT for a sending domain; exit 1 when
    a required record (all but MTA-STS and TLS-RPT) is wrong, missing or could not be checked."""
    from .doctor import default_helo

    layout = Layout.at(root)
    settings = _settings_for(layout, config_path)
    keys = []
    if settings is not None:
        keys = dnscheck.keys_from_settings(settings["dkim.keys"], str(layout.root) if layout.staged else "")
        ips = ips or tuple(settings["deliverability.sending_ips"])
        nameservers = nameservers or tuple(settings["deliverability.nameservers"])
        bounce_domain = bounce_domain or settings.get("delivery.bounce_domain") or ""
    for item in nameservers:
        try:
            dnscheck.parse_nameserver(item)
        except ValueError as exc:
            raise Fatal(f"--nameserver: {exc}") from None
    helo_setting = "--helo" if helo else dnscheck.HELO_SETTING
    helo = helo or (default_helo(settings) if settings is not None else __import__("socket").getfqdn())
    report = dnscheck.run_checks(domain.lower().rstrip("."), ips=list(ips), helo=helo, keys=keys,
                                 helo_setting=helo_setting,
                                 bounce_domain=(bounce_domain or "").lower(),
                                 from_domain=(from_domain or "").lower(),
                                 nameservers=list(nameservers), timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_table(report.checks)
    sys.exit(EXIT_FAIL if report.failed else 0)


@cli.command()
@click.option("--nameserver", "nameservers", multiple=True, metavar="H[:P]", help="DNS server for the DNS summary.")
@click.option("--ip", "ips", multiple=True, help="Sending IP for the DNS summary.")
@click.option("--no-dns", is_flag=True, help="Skip the DNS summary.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, a result per probe.")
@root_option
def doctor(nameservers, ips, no_dns, as_json, root) -> None:
    """Config, secrets' permissions, database, queue, SMTP relays, disk space, DNS summary."""
    from . import doctor as doctor_module

    results = doctor_module.run(Layout.at(root), nameservers=nameservers, ips=ips, dns=not no_dns)
    if as_json:
        click.echo(json.dumps({n: c.as_dict() for n, c in results.items()}, indent=2))
    else:
        print_table(results)
    sys.exit(EXIT_FAIL if any(c.status == "fail" for c in results.values()) else 0)


def main() -> None:
    cli(prog_name="altkraft-install")


if __name__ == "__main__":
    main()
