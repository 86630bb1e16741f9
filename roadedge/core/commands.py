"""What a command module needs to register its subcommands without importing their work."""
import importlib


def lazy_handler(module, function):
    """A subcommand handler that imports `module` only when the subcommand runs."""

    def handler(args):
        return getattr(importlib.import_module(module), function)(args)

    return handler
