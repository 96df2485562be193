"""Outbound delivery: handing messages to remote MX hosts and smarthosts."""
