"""The GitHub MCP server.

Who owns what:
- ``client``: the seam to the GitHub REST API (base URL, token, rate limits, pagination, errors).
- ``server``: the MCP tools; each validates, calls the client, and budgets its output.
"""
