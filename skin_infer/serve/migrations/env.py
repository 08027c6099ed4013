"""Alembic environment: the URL comes from the caller's config (``db.migrate``), the models from ``db``."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from skin_infer.serve.db import Base

config = context.config
with engine_from_config(config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool).connect() as c:
    context.configure(connection=c, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
