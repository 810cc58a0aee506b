"""The one exception type that reaches the user as a single line (exit code 2)."""


class UserError(Exception):
    """A problem the user can fix: bad config, missing path, malformed data. Printed as one line, exit 2."""
