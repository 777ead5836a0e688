"""Argument types shared by the management commands."""

import argparse
from datetime import UTC, datetime


def iso_time(raw: str) -> datetime:
    """An ISO 8601 time for argparse (`type=iso_time`); naive times are UTC, as every time here."""
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{raw}' is not an ISO time such as 2018-01-15T12:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
