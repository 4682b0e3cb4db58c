"""The one exception type for failures a user can cause and fix."""


class UserError(Exception):
    """Bad flag, missing or corrupt data, unreachable cluster, existing run name...

    The CLI prints its message as one line on stderr and exits with status 2; anything
    else that escapes is our bug and keeps its traceback.
    """
