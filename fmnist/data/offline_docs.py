"""Data Docs that render with no network: Great Expectations' pages load Bootstrap, jQuery,
bootstrap-table and Font Awesome from CDNs, and their results tables are drawn by those scripts,
so offline they show no rows. This copies the vendored copies (fmnist/web/data_docs/, fetched by
`python -m fmnist.web.vendor`) beside the docs and points every page at them by relative paths,
so the folder works anywhere it is copied."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

VENDORED = Path(__file__).resolve().parents[1] / "web" / "data_docs"
VENDOR_SUBDIR = Path("static") / "vendor"  # inside the docs folder, beside GX's own static/

# The URLs GX 1.24's page templates load -> the vendored file that replaces each.
LOCAL_COPIES = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": "bootstrap-table-filter-control.min.js",
    # GX asks for 1.19.0's filter-control styles beside 1.19.1's script: one copy serves both.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": "bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome/css/all.min.css",
}
# Loaded by every page but used by none of this project's: Vega draws charts no suite here
# renders (tests/test_offline_html.py checks no page calls it), and the dark theme is optional
# styling. Dropped rather than vendored to keep the copies small.
UNUSED = {
    "https://cdn.jsdelivr.net/npm/vega@5",
    "https://cdn.jsdelivr.net/npm/vega-lite@5",
    "https://cdn.jsdelivr.net/npm/vega-embed@6",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css",
}
# The navbar logo comes from GX's S3 bucket; GX also copies it into the docs' static/images/.
GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

# A <script src>, <link href> or <img src> element with an absolute http(s) URL.
REMOTE_ELEMENT = re.compile(
    r'<(?P<tag>script|link|img)\b[^>]*?\b(?:src|href)="(?P<url>https?://[^"]*)"[^>]*>'
    r'(?:\s*</script>)?')


def _local_element(match: re.Match[str], page_dir: Path, docs_dir: Path) -> str:
    """The element rewritten to a local file, '' to drop it, or unchanged if unknown."""
    tag, url = match["tag"], match["url"]
    if url in UNUSED:
        return ""
    if url in LOCAL_COPIES:
        target = docs_dir / VENDOR_SUBDIR / LOCAL_COPIES[url]
    elif tag == "img" and url.startswith(GX_WEB_ASSETS):
        target = docs_dir / "static" / "images" / url.removeprefix(GX_WEB_ASSETS).split("?")[0]
        if not target.is_file():
            return match[0]
    else:
        return match[0]
    # No integrity/crossorigin attributes: a CORS-mode load of a file:// URL always fails.
    relative = Path(os.path.relpath(target, page_dir)).as_posix()
    if tag == "script":
        return f'<script src="{relative}"></script>'
    if tag == "link":
        return f'<link rel="stylesheet" href="{relative}">'
    return match[0].replace(url, relative)


def use_vendored_assets(docs_dir: Path) -> None:
    """Copy the vendored assets into docs_dir and point every Data Docs page at them."""
    docs_dir = Path(docs_dir)
    shutil.copytree(VENDORED, docs_dir / VENDOR_SUBDIR, dirs_exist_ok=True)
    for page in docs_dir.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        local = REMOTE_ELEMENT.sub(lambda match: _local_element(match, page.parent, docs_dir),
                                   html)
        if local != html:
            page.write_text(local, encoding="utf-8")
