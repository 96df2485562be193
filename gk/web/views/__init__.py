"""The web UI's pages, one module per part (sign-in, assistant, mail, ...)."""
