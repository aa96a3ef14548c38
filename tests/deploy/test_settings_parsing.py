"""Settings read from the environment: defaults, parsing and readable errors."""

from __future__ import annotations

import pytest

from studio.settings import from_environment


def test_defaults_run_on_a_laptop_with_nothing_installed():
    config = from_environment({})
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["STUDIO_S3_BUCKET"] is None and config["STUDIO_JOB_RETRY_INTERVALS"] == [5, 30, 120]


def test_postgres_urls_name_the_installed_driver():
    config = from_environment({"DATABASE_URL": "postgres://u:p@db:5432/studio"})
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u:p@db:5432/studio"


@pytest.mark.parametrize("name, value", [("STUDIO_JOB_TIMEOUT", "soon"), ("STUDIO_JOB_RETRY_INTERVALS", "5,x")])
def test_malformed_numbers_name_the_setting(name, value):
    with pytest.raises(ValueError, match=name):
        from_environment({name: value})
