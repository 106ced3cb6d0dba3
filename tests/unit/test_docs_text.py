"""Documents into sections and chunks: HTML, Markdown, reST; heading paths; sizes and overlap."""

from __future__ import annotations

from docs_mcp.chunking import CHUNK_CHARS, chunk_document, split_text
from docs_mcp.documents import parse

HTML = """<html><head><title>Indexes</title><style>.x{}</style></head><body>
<div class="navheader"><a href="prev.html">Prev</a> Up Next</div>
<h1>Indexes</h1><p>An index speeds up <b>lookups</b>.</p><script>var x = 1;</script>
<h2>B-tree</h2><p>Default type.</p><pre>CREATE INDEX i ON t (c);
  -- kept as written</pre>
<h3>Deduplication</h3><p>Saves space.</p>
<h2>GIN</h2><p>For arrays &amp; jsonb.</p>
<div class="navfooter">Home</div></body></html>"""


def test_html_sections_keep_heading_paths_and_drop_navigation() -> None:
    doc = parse(HTML, "html", "https://d/indexes.html", "fallback")
    assert doc.title == "Indexes"
    paths = [s.path for s in doc.sections]
    assert paths == [("Indexes",), ("Indexes", "B-tree"), ("Indexes", "B-tree", "Deduplication"), ("Indexes", "GIN")]
    assert "Prev" not in doc.text and "var x" not in doc.text and "Home" not in doc.text
    assert "  -- kept as written" in doc.sections[1].text and "arrays & jsonb" in doc.sections[3].text


def test_markdown_and_rst_headings() -> None:
    md = parse("# Guide\nintro\n```\n# not a heading\n```\n## Install\nrun it\n", "markdown", "u", "f")
    assert md.title == "Guide" and [s.path for s in md.sections] == [("Guide",), ("Guide", "Install")]
    assert "# not a heading" in md.sections[0].text
    rst = parse("=====\nTitle\n=====\n\nHello\n\nUsage\n-----\n\nDo this.\n", "rst", "u", "f")
    assert rst.title == "Title" and [s.path for s in rst.sections] == [("Title",), ("Title", "Usage")]
    text = parse("just text", "text", "u", "notes")
    assert text.title == "notes" and text.sections[0].text == "just text"


def test_chunks_are_bounded_overlap_and_carry_the_heading_path() -> None:
    paragraph = " ".join(f"word{i}" for i in range(120))  # ~ 900 characters
    body = "\n\n".join([paragraph] * 6)
    doc = parse(f"# Manual\n## Setup\n{body}\n", "markdown", "u", "f")
    chunks = chunk_document(doc)
    assert len(chunks) >= 3 and all(len(c.text) <= CHUNK_CHARS for c in chunks)
    assert all(c.heading == "Manual > Setup" for c in chunks)
    assert chunks[0].embedding_text.startswith("Manual > Setup\n\n")
    tail = chunks[0].text[-100:]
    assert tail.split()[-1] in chunks[1].text[:400]  # the next chunk starts with the end of the previous
    assert split_text("") == [] and split_text("short") == ["short"]
    long_word = "x" * 5000
    assert len(split_text(long_word)[0]) == CHUNK_CHARS
