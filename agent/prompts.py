"""Prompt templates: Jinja2 files in ``prompts/``, each overridable by a file of the same name in ``PROMPTS_DIR``.

``StrictUndefined`` makes a template that names a variable we do not pass fail loudly at render time
instead of silently dropping a part of the prompt. The system prompt takes only static values, so it
stays byte-identical between turns and requests and Claude's prompt cache can reuse it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from agent.errors import ConfigError

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
TEMPLATES = ("system.md.j2", "context.md.j2", "user.md.j2")


class PromptRenderer:
    """Renders the prompt templates.

    Args:
        override_dir: a directory whose templates replace the built-in ones of the same name.
        default_dir: the built-in templates (``prompts/``).
    """

    def __init__(self, override_dir: str | Path | None = None, default_dir: Path = DEFAULT_PROMPTS_DIR) -> None:
        search: list[str] = []
        if override_dir:
            path = Path(override_dir)
            if not path.is_dir():
                raise ConfigError(f"PROMPTS_DIR={str(path)!r} is not a directory: create it or unset PROMPTS_DIR")
            search.append(str(path))
        search.append(str(default_dir))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text for a model, not HTML
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, **values: Any) -> str:
        """Render one template with ``values``; a missing variable raises :class:`ConfigError`."""
        try:
            return self._env.get_template(name).render(**values).strip()
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"prompt template {name!r} uses an undefined variable: {exc.message}") from exc
        except jinja2.TemplateError as exc:
            raise ConfigError(f"prompt template {name!r} cannot be rendered: {exc}") from exc
