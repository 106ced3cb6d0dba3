"""The documentation index and its MCP server.

Who owns what:
- ``documents``: turning HTML, Markdown, reStructuredText and text into titled sections (pure).
- ``chunking``: sections into ~2,000-character chunks with overlap, heading path kept (pure).
- ``crawl``: where documents come from: a folder, or a website through its sitemap (HTTP, robots.txt).
- ``index``: writing sources, pages and chunks (content hashes make re-ingest incremental).
- ``reindex``: rebuilding the HNSW indexes after large deletes (``heal_docs_indexes``) or on request.
- ``search``: the queries: hybrid ``search_docs`` (vectors + full text, reciprocal rank fusion),
  ``list_sources``, ``get_page``. The server and the CLI both call these.
- ``server``: the MCP tools, thin wrappers that validate, call ``search`` and budget the output.
"""
