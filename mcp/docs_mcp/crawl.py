"""Where documents come from: a local folder, or a website through its sitemap.

The website crawler is polite: it reads ``robots.txt`` (and its ``Crawl-delay``), waits between requests,
uses timeouts, follows only the sitemap's URLs on the same host, and caps the number of pages.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx2 as httpx

from database.errors import AthenaeumError
from docs_mcp.documents import SUFFIXES, Document, parse, title_from_path

USER_AGENT = "AthenaeumDocsIngest/1.0 (+https://github.com/athenaeum)"
DEFAULT_DELAY_SECONDS = 0.5
DEFAULT_TIMEOUT_SECONDS = 15.0
MAX_PAGES = 5000
MAX_SITEMAPS = 50
MAX_PAGE_BYTES = 5_000_000


class CrawlError(AthenaeumError):
    """A folder or website could not be read as documentation."""


@dataclass
class CrawlReport:
    """What a walk saw: pages that failed to load are kept apart, so their stored copies are not deleted."""

    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- folders
def list_folder(root: Path) -> list[Path]:
    """The documentation files under ``root`` (by suffix), in a stable order."""
    if root.is_file():
        return [root] if root.suffix.lower() in SUFFIXES else []
    if not root.is_dir():
        raise CrawlError(f"{str(root)!r} is neither a folder nor a URL: give a folder of docs or an http(s) URL")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read_folder(
    root: Path, files: list[Path], base_url: str | None = None, report: CrawlReport | None = None
) -> Iterator[Document]:
    """Parse each file; its URL is ``base_url`` + its relative path, or a ``file://`` URI."""
    base = root if root.is_dir() else root.parent
    for path in files:
        relative = path.relative_to(base).as_posix()
        url = urljoin(base_url.rstrip("/") + "/", relative) if base_url else path.resolve().as_uri()
        try:
            content = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            if report is not None:
                report.failed.append(url)
            continue
        yield parse(content, SUFFIXES[path.suffix.lower()], url, title_from_path(relative))


# ---------------------------------------------------------------- websites
class SiteCrawler:
    """Reads a website's pages listed in its sitemap.

    Args:
        start_url: the site (``https://docs.example.com/``) or its sitemap (``…/sitemap.xml``).
        client: the HTTP client (tests pass one bound to a local server).
        delay: seconds between requests (``robots.txt``'s ``Crawl-delay`` wins when longer).
        max_pages: stop after this many pages.
        sleep: how to wait (tests pass a recorder).
        clock: a monotonic clock (tests pass a fake one that only ``sleep`` advances).
    """

    def __init__(
        self,
        start_url: str,
        client: httpx.Client | None = None,
        *,
        delay: float = DEFAULT_DELAY_SECONDS,
        max_pages: int = MAX_PAGES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.start_url = start_url
        parts = urlsplit(start_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._client = client or httpx.Client(
            timeout=DEFAULT_TIMEOUT_SECONDS, follow_redirects=True, headers={"User-Agent": USER_AGENT}
        )
        self._delay = delay
        self._max_pages = max_pages
        self._sleep = sleep
        self._clock = clock
        self._last_request: float | None = None
        self._robots = RobotFileParser()
        self._robots.parse([])

    def page_urls(self) -> list[str]:
        """The sitemap's page URLs on this host that ``robots.txt`` allows, at most ``max_pages``."""
        sitemaps = self._read_robots()
        if self.start_url.endswith(".xml"):
            sitemaps = [self.start_url]
        elif not sitemaps:
            sitemaps = [urljoin(self.origin + "/", "sitemap.xml")]
        urls: list[str] = []
        seen_maps: set[str] = set()
        while sitemaps and len(seen_maps) < MAX_SITEMAPS and len(urls) < self._max_pages:
            sitemap = sitemaps.pop(0)
            if sitemap in seen_maps:
                continue
            seen_maps.add(sitemap)
            response = self._get(sitemap)
            if response is None or response.status_code != 200:
                raise CrawlError(
                    f"no sitemap at {sitemap} (HTTP {getattr(response, 'status_code', 'error')}): "
                    "give the sitemap URL itself, or ingest a local copy of the docs"
                )
            children, pages = _parse_sitemap(response.content)
            sitemaps.extend(c for c in children if _same_host(c, self.origin))
            urls.extend(u for u in pages if _same_host(u, self.origin) and self._allowed(u))
        return list(dict.fromkeys(urls))[: self._max_pages]

    def read(self, urls: list[str], report: CrawlReport) -> Iterator[Document]:
        """Fetch and parse each page; failures are recorded in ``report`` and skipped."""
        for url in urls:
            response = self._get(url)
            if response is None or response.status_code != 200:
                report.failed.append(url)
                continue
            kind = _kind(response.headers.get("content-type", ""), url)
            if kind is None or len(response.content) > MAX_PAGE_BYTES:
                report.skipped.append(url)
                continue
            yield parse(response.text, kind, url, title_from_path(urlsplit(url).path or url))

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _read_robots(self) -> list[str]:
        response = self._get(urljoin(self.origin + "/", "robots.txt"))
        if response is None or response.status_code != 200:
            return []
        lines = response.text.splitlines()
        self._robots.parse(lines)
        crawl_delay = self._robots.crawl_delay(USER_AGENT)
        if crawl_delay:
            self._delay = max(self._delay, float(crawl_delay))
        return [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("sitemap:")]

    def _allowed(self, url: str) -> bool:
        return self._robots.can_fetch(USER_AGENT, url)

    def _get(self, url: str) -> httpx.Response | None:
        if self._last_request is not None:
            wait = self._last_request + self._delay - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()
        try:
            return self._client.get(url)
        except httpx.HTTPError:
            return None


def _parse_sitemap(content: bytes) -> tuple[list[str], list[str]]:
    """(child sitemaps, page URLs) of a sitemap or sitemap index."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise CrawlError("the sitemap is not valid XML") from exc
    children: list[str] = []
    pages: list[str] = []
    for element in root.iter():
        if element.tag.endswith("loc") and element.text:
            parent_is_index = root.tag.endswith("sitemapindex")
            (children if parent_is_index else pages).append(element.text.strip())
    return children, pages


def _same_host(url: str, origin: str) -> bool:
    return url.startswith(origin + "/") or url == origin


def _kind(content_type: str, url: str) -> str | None:
    content_type = content_type.split(";")[0].strip().lower()
    if content_type in ("text/html", "application/xhtml+xml"):
        return "html"
    if content_type in ("text/markdown", "text/x-markdown"):
        return "markdown"
    if content_type in ("text/x-rst",):
        return "rst"
    if content_type == "text/plain":
        suffix = "." + url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
        return SUFFIXES.get(suffix, "text")
    return None
