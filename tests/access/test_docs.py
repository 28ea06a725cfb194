"""docs/admin.md's roles & permissions table is the one generated from access/models.py."""
from pathlib import Path

from altkraft_onprem.access import docs
from altkraft_onprem.access.models import BUILTIN_ROLES, PERMISSIONS
from altkraft_onprem.web.views import PLACEHOLDER_AREAS

ADMIN_MD = Path(__file__).resolve().parents[2] / "docs" / "admin.md"


def test_admin_doc_table_matches_permissions_and_builtin_roles():
    in_doc = docs.current_table(ADMIN_MD.read_text(encoding="utf-8"))
    assert in_doc == docs.permissions_table(), (
        "docs/admin.md's permissions table differs from PERMISSIONS/BUILTIN_ROLES: run `make docs`")


def test_generated_table_has_a_row_per_permission_and_a_column_per_role():
    lines = docs.permissions_table().splitlines()
    assert len(lines) == 2 + len(PERMISSIONS)
    assert all(role in lines[0] for role in BUILTIN_ROLES)
    viewer = next(line for line in lines if line.startswith("| `users:manage`"))
    assert viewer.rstrip(" |").endswith("✓")        # only the Administrator column is ticked
    assert viewer.count("✓") == 1


def test_rewrite_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "admin.md"
    page.write_text(f"intro\n{docs.START}\nold table\n{docs.END}\noutro\n", encoding="utf-8")
    assert docs.rewrite(page) is True
    text = page.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert docs.current_table(text) == docs.permissions_table()
    assert docs.rewrite(page) is False


def test_permissions_of_placeholder_areas_say_their_page_is_a_placeholder():
    """The table must not offer what does not exist: a permission of an area whose page is
    still a placeholder says so (in docs/admin.md and on the roles page alike)."""
    areas = {permission.split(":")[0] for _, permission, _, _ in PLACEHOLDER_AREAS}
    silent = [name for name, what in PERMISSIONS.items()
              if name.split(":")[0] in areas and "placeholder" not in what]
    assert not silent, silent


def test_permissions_of_built_areas_do_not_call_their_page_a_placeholder():
    """The Settings and Automation pages exist now: their permissions (and docs/admin.md's
    table, generated from them) must not say the page is a placeholder."""
    areas = {permission.split(":")[0] for _, permission, _, _ in PLACEHOLDER_AREAS}
    stale = [name for name, what in PERMISSIONS.items()
             if name.split(":")[0] not in areas and "placeholder" in what.lower()]
    assert not stale, stale
    assert "placeholder" not in docs.current_table(ADMIN_MD.read_text(encoding="utf-8")).lower()
