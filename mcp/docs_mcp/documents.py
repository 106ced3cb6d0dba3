"""Documents as titled sections: HTML, Markdown, reStructuredText and plain text, parsed without I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

#: File suffixes read from a folder, by the parser that reads them.
SUFFIXES = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
}


@dataclass(frozen=True)
class Section:
    """Text under one heading; ``path`` is the headings from the top of the page down to it."""

    path: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class Document:
    """One page: where it lives, its title and its sections in reading order."""

    url: str
    title: str
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        """The page as plain text, headings included (what ``get_page`` returns and the hash covers)."""
        parts: list[str] = []
        for section in self.sections:
            if section.path:
                parts.append(section.path[-1])
            if section.text:
                parts.append(section.text)
        return "\n\n".join(parts)


def parse(content: str, kind: str, url: str, fallback_title: str) -> Document:
    """Parse ``content`` of ``kind`` (``html``, ``markdown``, ``rst`` or ``text``) into a :class:`Document`."""
    if kind == "html":
        return parse_html(content, url, fallback_title)
    if kind == "markdown":
        return _from_lines(_markdown_headings(content), url, fallback_title)
    if kind == "rst":
        return _from_lines(_rst_headings(content), url, fallback_title)
    text = _squeeze(content)
    return Document(url, fallback_title, (Section((), text),) if text else ())


def title_from_path(path: str) -> str:
    """A readable title from a file name: ``getting-started.md`` becomes ``getting started``."""
    return PurePath(path).stem.replace("-", " ").replace("_", " ").strip() or path


# ---------------------------------------------------------------- HTML
_SKIP_TAGS = {"script", "style", "nav", "noscript", "template", "svg", "head", "footer"}
_SKIP_CLASSES = ("navheader", "navfooter", "skip-link", "sidebar", "breadcrumb")
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "tr",
    "table",
    "section",
    "article",
    "pre",
    "blockquote",
    "dt",
    "dd",
    "ul",
    "ol",
    "dl",
    "hr",
    "figure",
    "caption",
    "main",
    "header",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _HTMLSections(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []  # (level, heading) of the open headings
        self._buffer: list[str] = []
        self._heading: list[str] | None = None
        self._heading_level = 0
        self._in_title = False
        self._skip_depth = 0
        self._open: list[tuple[str, bool]] = []  # tag, whether it started a skipped region
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in ("br", "hr") and not self._skip_depth:
                self._buffer.append("\n")
            return
        classes = (dict(attrs).get("class") or "").lower()
        skip = tag in _SKIP_TAGS or any(name in classes for name in _SKIP_CLASSES)
        self._open.append((tag, skip))
        if skip:
            self._skip_depth += 1
        if tag == "title":
            self._in_title = True
        if self._skip_depth:
            return
        if tag in _HEADINGS:
            self._flush()
            self._heading, self._heading_level = [], _HEADINGS[tag]
        elif tag == "pre":
            self._pre += 1
            self._buffer.append("\n")
        elif tag in _BLOCK_TAGS:
            self._buffer.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # Pop to the matching open tag (HTML in the wild leaves tags unclosed).
        while self._open:
            open_tag, skipped = self._open.pop()
            if skipped:
                self._skip_depth -= 1
            if open_tag == "title":
                self._in_title = False
            if open_tag in _HEADINGS and self._heading is not None:
                self._close_heading()
            if open_tag == "pre" and self._pre:
                self._pre -= 1
            if open_tag == tag:
                break
        if tag in _BLOCK_TAGS and not self._skip_depth:
            self._buffer.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip_depth:
            return
        if self._heading is not None:
            self._heading.append(data)
        elif self._pre:
            self._buffer.append(data)
        else:
            self._buffer.append(re.sub(r"\s+", " ", data))

    def _close_heading(self) -> None:
        heading = " ".join("".join(self._heading or []).split())
        self._heading = None
        if not heading:
            return
        while self._stack and self._stack[-1][0] >= self._heading_level:
            self._stack.pop()
        self._stack.append((self._heading_level, heading))

    def _flush(self) -> None:
        text = _squeeze("".join(self._buffer))
        self._buffer = []
        path = tuple(h for _, h in self._stack)
        if text or (path and not self.sections):
            self.sections.append(Section(path, text))

    def close(self) -> None:
        super().close()
        if self._heading is not None:
            self._close_heading()
        self._flush()


def parse_html(content: str, url: str, fallback_title: str) -> Document:
    """Sections of an HTML page split at ``h1``–``h6``; navigation, scripts and styles dropped."""
    parser = _HTMLSections()
    parser.feed(content)
    parser.close()
    sections = tuple(s for s in parser.sections if s.text or s.path)
    title = " ".join(parser.title.split())
    if not title:
        first = next((s.path[0] for s in sections if s.path), "")
        title = first or fallback_title
    return Document(url, title, tuple(s for s in sections if s.text))


# ---------------------------------------------------------------- Markdown and reST
def _markdown_headings(content: str) -> list[tuple[int, str] | str]:
    """Lines of Markdown with ATX headings (outside code fences) turned into ``(level, text)``."""
    out: list[tuple[int, str] | str] = []
    fence = False
    for line in content.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        match = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        out.append((len(match.group(1)), match.group(2)) if match else line)
    return out


_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def _rst_headings(content: str) -> list[tuple[int, str] | str]:
    """Lines of reStructuredText with underlined (optionally overlined) titles turned into ``(level, text)``.

    Levels follow the order in which adornment styles first appear, as docutils does.
    """
    lines = content.splitlines()
    styles: list[tuple[str, bool]] = []
    out: list[tuple[int, str] | str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        over = _ADORNMENT.match(line)
        if over and i + 2 < len(lines) and lines[i + 1].strip() and _ADORNMENT.match(lines[i + 2]):
            style = (line.strip()[0], True)
            text, i = lines[i + 1].strip(), i + 3
        elif line.strip() and not over and _ADORNMENT.match(nxt) and len(nxt.strip()) >= len(line.strip()):
            style = (nxt.strip()[0], False)
            text, i = line.strip(), i + 2
        else:
            out.append(line)
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        out.append((styles.index(style) + 1, text))
    return out


def _from_lines(lines: list[tuple[int, str] | str], url: str, fallback_title: str) -> Document:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    buffer: list[str] = []
    title = ""

    def flush() -> None:
        text = _squeeze("\n".join(buffer))
        if text:
            sections.append(Section(tuple(h for _, h in stack), text))
        buffer.clear()

    for item in lines:
        if isinstance(item, tuple):
            flush()
            level, heading = item
            if not title and level == 1:
                title = heading
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
        else:
            buffer.append(item)
    flush()
    return Document(url, title or fallback_title, tuple(sections))


def _squeeze(text: str) -> str:
    """Trim lines, drop runs of blank lines (keeps paragraph breaks)."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\xa0", " ").split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
