"""Render the report context to HTML (Jinja2) and the same HTML to PDF (WeasyPrint).

Email subjects and bodies are untrusted: autoescape is on, bodies are shown as escaped
preformatted text, the stylesheet is inlined from the package, and WeasyPrint gets a URL
fetcher that refuses everything except `data:` URIs and files inside the template folder.
So `<img src=http://…>` or CSS `url(…)` in a body is text, and nothing is ever fetched.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from auditkit.errors import ReportError
from auditkit.report.pdf_attach import Revision, revision_of

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STYLESHEET = "report.css"
# PDF/A-3 allows associated files of any type (the CSV ledgers); "u": all text maps to
# Unicode, so it can be searched and copied. WeasyPrint adds the sRGB output intent and XMP.
PDF_VARIANT = "pdf/a-3u"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("auditkit", "report/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    register_filters(env)
    return env


def _defined(value: Any) -> Any:
    """Filters that format values must not swallow a missing key into a TypeError."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming the key
    return value


def register_filters(env: jinja2.Environment) -> None:
    env.filters["num"] = lambda n: f"{_defined(n):,}"
    env.filters["pct"] = lambda part, whole: (
        "–" if not _defined(whole) else f"{100 * _defined(part) / whole:.1f}%"
    )
    env.filters["or_dash"] = lambda v: "—" if v in (None, "") else v
    env.filters["safe_href"] = safe_href
    env.filters["duration"] = human_duration


def safe_href(url: str | None) -> str | None:
    """Only https links reach an href; anything else (javascript:, data:, http:) is not a link."""
    return url if isinstance(url, str) and url.startswith("https://") else None


def human_duration(value: float | None) -> str:
    seconds = _defined(value)
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def stylesheet() -> Markup:
    # Trusted: shipped with the package, never built from data.
    return Markup((TEMPLATES_DIR / STYLESHEET).read_text(encoding="utf-8"))


def render_html(context: Mapping[str, Any]) -> str:
    try:
        return environment().get_template("base.html").render(**context, stylesheet=stylesheet())
    except jinja2.UndefinedError as exc:
        raise ReportError(
            f"report template needs a value the context lacks: {exc.message}"
        ) from exc
    except jinja2.TemplateError as exc:
        raise ReportError(f"report template failed: {exc}") from exc


def _pdf_fetcher() -> Any:
    from weasyprint.urls import URLFetcher

    root = TEMPLATES_DIR

    class PackagedOnlyFetcher(URLFetcher):
        """Serves data: URIs and files under the template folder; refuses everything else."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:"):
                return super().fetch(url, headers)
            if url.startswith("file://"):
                from urllib.request import url2pathname

                path = Path(url2pathname(url.removeprefix("file://").split("?")[0])).resolve()
                if path.is_relative_to(root) and path.is_file():
                    return super().fetch(url, headers)
            logger.warning("refused to fetch %r while rendering the PDF", url[:200])
            raise ValueError(f"auditkit renders nothing remote: {url[:200]}")

    return PackagedOnlyFetcher(allowed_protocols={"data", "file"}, allow_redirects=False)


@contextmanager
def _source_date_epoch(as_of: datetime) -> Iterator[None]:
    """Pin the clock fontTools stamps into subset fonts (the `head.modified` field, written
    when WeasyPrint subsets without HarfBuzz) via the reproducible-builds SOURCE_DATE_EPOCH
    convention. It is process-wide, so it is set only for the render and then restored."""
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(int(as_of.timestamp()))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous


def render_pdf(html: str, target: Path, *, as_of: datetime) -> Revision:
    """Write the PDF/A-3u from the same HTML, byte-identical on reruns: creation/modification
    dates come from the data (the `dcterms.created`/`dcterms.modified` meta in the HTML head,
    the latest harvest time, also in the XMP metadata), embedded font timestamps are pinned
    to `as_of`, and the file identifier is the content hash. Returns what
    `pdf_attach.append_ledgers` needs to add the CSVs afterwards."""
    import weasyprint

    rendered: list[Any] = []
    try:
        with _source_date_epoch(as_of), warnings.catch_warnings():
            # WeasyPrint opens its sRGB profile for the PDF/A output intent and never closes
            # it (it reads it whole first, so nothing is lost): not ours to report.
            warnings.filterwarnings(
                "ignore", r"unclosed file .*sRGB2014\.icc", category=ResourceWarning
            )
            weasyprint.HTML(
                string=html, base_url=str(TEMPLATES_DIR), url_fetcher=_pdf_fetcher()
            ).write_pdf(
                target,
                pdf_variant=PDF_VARIANT,
                pdf_identifier=True,
                uncompressed_pdf=False,
                finisher=lambda _document, pdf: rendered.append(pdf),
            )
        return revision_of(rendered[0], target)
    except Exception as exc:  # WeasyPrint raises many types; the pack must fail as a whole
        raise ReportError(f"PDF rendering failed: {exc}") from exc
