"""`altkraft-install dkim generate`: a key file per selector and its [[dkim.keys]] entry."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from altkraft_onprem import config as config_module
from altkraft_onprem.delivery import dkimkeys

from . import configfile, system
from .layout import CONFIG, DKIM_DIR, SERVICE_USER, Layout
from .steps import InstallError


@dataclass
class GeneratedKey:
    path: str            # where the file is (under the staging root, if any)
    live_path: str       # what the config names
    selector: str
    algorithm: str
    txt_name: str
    txt_value: str
    created: bool
    registered: bool

    @property
    def zone_line(self) -> str:
        return dkimkeys.zone_line(self.txt_name, self.txt_value)


def _valid_label(text: str, what: str) -> str:
    text = text.strip().lower().rstrip(".")
    labels = text.split(".")
    if not text or any(not label or len(label) > 63 or label.startswith("-") or label.endswith("-")
                       or not all(c.isalnum() or c == "-" for c in label) for label in labels):
        raise InstallError(f"{what} {text!r}: expected a DNS name such as example.com")
    return text


def generate(layout: Layout, domain: str, selector: str, *, algorithm: str = "rsa-sha256",
             bits: int = 2048, register: bool = True,
             say: Callable[[str], None] = print) -> GeneratedKey:
    """Creates (or reuses) DKIM key SELECTOR.DOMAIN.key and registers it in config.toml."""
    domain = _valid_label(domain, "--domain")
    selector = _valid_label(selector, "--selector")
    live = layout.live_key_file(domain, selector)
    path = layout.path(live)
    created = False
    dkim_dir = layout.path(DKIM_DIR)
    dkim_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    if path.exists():
        pem = dkimkeys.read_key_file(path)
    else:
        pem = dkimkeys.generate_private_pem(algorithm, bits)
        dkimkeys.write_private_key(path, pem)
        created = True
    try:
        public = dkimkeys.public_key(pem)
    except dkimkeys.DkimKeyError as exc:
        raise InstallError(f"{path}: {exc}") from None
    if dkimkeys.ALGORITHMS[algorithm] != public.k:
        raise InstallError(f"{path} already holds a {public.k} key; choose another selector for "
                           f"{algorithm}")
    if not layout.staged and system.user_exists():
        system.ensure_owner(dkim_dir, SERVICE_USER, SERVICE_USER, recursive=True)
    registered = _register(layout, domain, selector, live, algorithm) if register else False
    return GeneratedKey(str(path), live, selector, algorithm, dkimkeys.record_name(domain, selector),
                        public.txt, created, registered)


def _register(layout: Layout, domain: str, selector: str, live: str, algorithm: str) -> bool:
    path = layout.path(CONFIG)
    if not path.exists():
        raise InstallError(f"{path} is missing: run `altkraft-install install` first "
                           "(or pass --no-register)")
    text = path.read_text()
    try:
        current = config_module.load(path, environ={})
    except config_module.ConfigError as exc:
        raise InstallError(str(exc)) from None
    for item in current["dkim.keys"]:
        if item["domain"].lower() == domain and item["selector"].lower() == selector:
            return False
    text = configfile.append_table(text, "dkim.keys", {"domain": domain, "selector": selector,
                                                       "key_file": live, "algorithm": algorithm})
    try:
        configfile.validate(text)
    except config_module.ConfigError as exc:
        raise InstallError(str(exc)) from None
    configfile.write_atomic(path, text, 0o640)
    return True
