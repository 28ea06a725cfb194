"""Alembic environment: the engine comes from the caller (altkraft db upgrade, tests)."""
from alembic import context

import altkraft_onprem.models_all  # noqa: F401  (every domain's tables on metadata)
from altkraft_onprem.db import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
