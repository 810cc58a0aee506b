"""The exception types that reach the user as a single line."""


class UserError(Exception):
    """A problem the user can fix: bad config, missing path, malformed data. Printed as one line, exit 2."""

    exit_code = 2


class GateFailure(UserError):
    """The work ran and its report is written, but no candidate passed the evaluation gates (exit 1)."""

    exit_code = 1
