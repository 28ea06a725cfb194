"""Imports every domain's tables so that `db.metadata` is complete (migrations, tests)."""
from altkraft_onprem.access import models as access_models  # noqa: F401
from altkraft_onprem.audience import models as audience_models  # noqa: F401
from altkraft_onprem.audience.importer import models as import_models  # noqa: F401
from altkraft_onprem.automation import models as automation_models  # noqa: F401
from altkraft_onprem.automation import workflow_models  # noqa: F401
from altkraft_onprem.campaigns import models as campaigns_models  # noqa: F401
from altkraft_onprem.deliverability import models as deliverability_models  # noqa: F401
from altkraft_onprem.delivery import models as delivery_models  # noqa: F401
from altkraft_onprem.inbound import models as inbound_models  # noqa: F401
from altkraft_onprem.messages import models as messages_models  # noqa: F401
from altkraft_onprem.reports import feedback as reports_feedback  # noqa: F401
from altkraft_onprem.tracking import models as tracking_models  # noqa: F401
