"""The base of every error that gk reports to a person as one line."""


class GkError(Exception):
    """
    An error whose message is fit to show to an operator or user as it is:
    the CLI prints it as one line on stderr, twistd stops with it.
    """
