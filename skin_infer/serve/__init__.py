"""`skin serve`: a skin-tracking web service on the runtime (FastAPI, SQLAlchemy, Alembic). Optional extra:
``pip install 'skin-infer[serve]'``."""
