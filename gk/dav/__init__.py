"""CalDAV (RFC 4791) and CardDAV: calendar and contact data, queries and the protocol."""
