"""Sections into chunks of about 2,000 characters with overlap; each chunk keeps its heading path."""

from __future__ import annotations

import re
from dataclasses import dataclass

from docs_mcp.documents import Document

CHUNK_CHARS = 2000
OVERLAP_CHARS = 200
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    """A piece of a page: its position, heading path (``A > B``), text, and what gets embedded."""

    ordinal: int
    heading: str
    text: str
    title: str

    @property
    def embedding_text(self) -> str:
        """The text given to the embedding model: title and heading path first, so they steer the vector."""
        head = self.heading if self.heading.startswith(self.title) else f"{self.title}{HEADING_SEPARATOR}{self.heading}"
        return f"{head.strip(' >')}\n\n{self.text}"


def chunk_document(document: Document, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    """Split every section of ``document`` into chunks of at most ``size`` characters.

    Paragraphs are kept whole when they fit; a chunk that continues a section starts with the last
    ``overlap`` characters of the previous one, so a sentence cut at a boundary is found from either side.
    """
    chunks: list[Chunk] = []
    for section in document.sections:
        heading = HEADING_SEPARATOR.join(section.path) or document.title
        for piece in split_text(section.text, size, overlap):
            chunks.append(Chunk(len(chunks), heading, piece, document.title))
    return chunks


def split_text(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, cut at paragraph, line, sentence or word breaks."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _break_before(text, start, end)
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        if end >= len(text):
            break
        # Step back by the overlap, to a word boundary, but always move forward.
        back = max(end - overlap, start + 1)
        space = text.find(" ", back, end)
        start = space + 1 if space != -1 else back
    return pieces


def _break_before(text: str, start: int, end: int) -> int:
    floor = start + (end - start) // 2  # never cut a piece to less than half its size
    for pattern in ("\n\n", "\n", ". ", " "):
        cut = text.rfind(pattern, floor, end)
        if cut != -1:
            return cut + len(pattern)
    return end


def normalise_whitespace(text: str) -> str:
    """Collapse runs of whitespace (for hashing and comparisons)."""
    return re.sub(r"\s+", " ", text).strip()
