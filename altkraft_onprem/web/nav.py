"""The navigation: one entry per product area, shown when the user's role may open it."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: object      # lazy string: translated when rendered
    permission: str
    icon: str


NAV: list[NavItem] = [
    NavItem("web.dashboard", _l("Dashboard"), "dashboard:read", "home"),
    NavItem("audience.index", _l("Audience"), "lists:read", "users"),
    NavItem("messages.index", _l("Messages"), "messages:read", "mail"),
    NavItem("campaigns.index", _l("Campaigns"), "campaigns:read", "send"),
    NavItem("automation.index", _l("Automation"), "automation:read", "zap"),
    NavItem("reports.index", _l("Reports"), "reports:read", "chart"),
    NavItem("deliverability.index", _l("Deliverability"), "deliverability:read", "shield"),
    NavItem("settings.index", _l("Settings"), "settings:manage", "gear"),
    NavItem("access.users", _l("Users & roles"), "users:manage", "key"),
    NavItem("access.audit", _l("Audit log"), "audit:read", "list"),
]


def replace(endpoint: str, new_endpoint: str) -> None:
    """A domain that builds its area points the menu at its own page."""
    for index, item in enumerate(NAV):
        if item.endpoint == endpoint:
            NAV[index] = NavItem(new_endpoint, item.label, item.permission, item.icon)
