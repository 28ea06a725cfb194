"""Imports every domain's jobs.py so that consumers register every task."""
import altkraft_onprem.access.jobs  # noqa: F401
import altkraft_onprem.audience.importer.jobs  # noqa: F401
import altkraft_onprem.audience.jobs  # noqa: F401
import altkraft_onprem.automation.jobs  # noqa: F401
import altkraft_onprem.campaigns.jobs  # noqa: F401
import altkraft_onprem.deliverability.jobs  # noqa: F401
import altkraft_onprem.inbound.jobs  # noqa: F401
