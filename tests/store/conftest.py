from __future__ import annotations

import pytest

from intentd.config import load_settings


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The application store's URL: a SQLite file, then a fresh PostgreSQL database."""
    database = "" if request.param == "sqlite" else request.getfixturevalue("fresh_postgres_url")()
    return load_settings({"INTENTD_DATABASE_URL": database}, data_dir=tmp_path).app_database_url
