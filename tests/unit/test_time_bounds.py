"""One date convention for every command (issue 17): `--to D` includes day D everywhere
(`show --until D` used to exclude it while `report --to D` included it), an ISO time is an
exact instant, and a reversed period is a usage error instead of "no records"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from genai_audit.cli.common import END, START
from genai_audit.cli.main import cli


def test_a_date_is_a_whole_day_and_a_time_an_instant():
    assert START.convert("2026-07-01", None, None) == datetime(2026, 7, 1, tzinfo=UTC)
    assert END.convert("2026-09-30", None, None) == datetime(2026, 10, 1, tzinfo=UTC)
    assert END.convert("2026-09-30T12:30:00", None, None) == datetime(2026, 9, 30, 12, 30,
                                                                      tzinfo=UTC)
    assert START.convert("2026-09-30T12:30:00+02:00", None, None) == datetime(
        2026, 9, 30, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize("argv", [
    ["report", "--from", "2026-05-01", "--to", "2026-04-01"],
    ["verify", "--from", "2026-05-01", "--to", "2026-04-01"],
    ["show", "--tenant", "t", "--user-key", "k", "--actor", "a", "--purpose", "p",
     "--from", "2026-05-01", "--to", "2026-04-01"],
    ["show", "--tenant", "t", "--user-key", "k", "--actor", "a", "--purpose", "p",
     "--since", "2026-05-01", "--until", "2026-04-01"],  # the older names, same rule
    ["disclosures", "--tenant", "t", "--from", "2026-05-01", "--to", "2026-04-01"],
    ["hold", "add", "--tenant", "t", "--reason", "r", "--from", "2026-05-01",
     "--to", "2026-04-01"],
], ids=lambda a: " ".join(a[:2]))
def test_a_reversed_period_is_a_usage_error_in_every_command(argv, tmp_path):
    result = CliRunner().invoke(cli, [*argv, "--dsn", str(tmp_path / "never")])
    assert result.exit_code == 2, result.output
    assert "must be after" in result.output
    assert not (tmp_path / "never").exists()


def test_the_same_day_is_a_whole_day_not_an_empty_period():
    """`--from D --to D` is day D (it used to be empty, or a usage error, by command)."""
    start, end = START.convert("2026-07-01", None, None), END.convert("2026-07-01", None, None)
    assert (end - start).days == 1
