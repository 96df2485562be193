"""IMAP4rev1 server: command parser, session state, mailbox views, FETCH rendering."""
