"""gk: self-hosted mail, calendars, contacts and team chat with a local assistant."""

__version__ = "0.1.0"
