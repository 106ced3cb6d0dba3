"""Ingesting a website through its sitemap: robots.txt, crawl delay, content types, failures kept."""

from __future__ import annotations

import httpx2 as httpx
from docs_mcp.crawl import CrawlReport, SiteCrawler
from docs_mcp.index import DocsIndexer
from docs_mcp.search import get_page, search_docs
from embeddings import build_provider

from database import DatabaseConnection
from tests.fakes.docs_site import DocsSite, serve_site


def _site() -> DocsSite:
    site = DocsSite()
    html = "text/html; charset=utf-8"
    site.pages = {
        "/robots.txt": (
            "text/plain",
            "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\nSitemap: {url}/sitemap.xml\n",
        ),
        "/sitemap.xml": (
            "application/xml",
            '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
            'sitemap/0.9"><sitemap><loc>{url}/pages.xml</loc></sitemap></sitemapindex>',
        ),
        "/pages.xml": (
            "application/xml",
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            "<url><loc>{url}/guide/install.html</loc></url><url><loc>{url}/guide/tuning.md</loc></url>"
            "<url><loc>{url}/private/secret.html</loc></url><url><loc>{url}/logo.png</loc></url>"
            "<url><loc>{url}/gone.html</loc></url><url><loc>https://elsewhere.test/x.html</loc></url>"
            "</urlset>",
        ),
        "/guide/install.html": (
            html,
            "<html><title>Install</title><h1>Install</h1><p>Run the installer and "
            "initialise a cluster with initdb.</p></html>",
        ),
        "/guide/tuning.md": ("text/markdown", "# Tuning\n\nRaise shared_buffers to a quarter of memory.\n"),
        "/private/secret.html": (html, "<p>secret</p>"),
        "/logo.png": ("image/png", "PNG"),
    }
    return site


def test_a_site_is_crawled_politely_via_its_sitemap(db: DatabaseConnection) -> None:
    with serve_site(_site()) as site:
        site.pages = {k: (t, b.replace("{url}", site.url)) for k, (t, b) in site.pages.items()}
        sleeps: list[float] = []
        now = [0.0]

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        client = httpx.Client(timeout=5)
        crawler = SiteCrawler(site.url + "/", client, delay=0.5, sleep=sleep, clock=lambda: now[0])
        urls = crawler.page_urls()
        report = CrawlReport()
        stats = DocsIndexer(db, build_provider("local"), "site", site.url).ingest(crawler.read(urls, report), report)
        crawler.close()
        assert site.requests[0] == "/robots.txt"
        assert "/private/secret.html" not in site.requests  # robots.txt Disallow
        assert not any("elsewhere" in u for u in urls)  # other hosts are not followed
        assert report.failed == [f"{site.url}/gone.html"] and report.skipped == [f"{site.url}/logo.png"]
        assert stats.pages_added == 2
        # One wait before every request but the first; robots.txt's Crawl-delay (2 s) wins over the 0.5 s default.
        assert sleeps == [2.0] * (len(site.requests) - 1)
        with db.session() as session:
            hit = search_docs(session, build_provider("local"), "how much memory for shared buffers", limit=1)[0]
            assert hit.url == f"{site.url}/guide/tuning.md" and hit.title == "Tuning"
            assert "initdb" in get_page(session, f"{site.url}/guide/install.html").text
