"""Command-line commands. Each module has ``register(subparsers)``; ``athenaeum.py`` composes them.

A command handler takes ``(ctx: AppContext, args: argparse.Namespace)`` and returns an exit code.
"""
