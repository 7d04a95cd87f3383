"""Refetch the vendored web assets from the npm registry: `python -m fmnist.web.vendor`.

Writes fmnist/web/dvc_plots.html (DVC's page template with Vega, Vega-Lite and Vega-Embed inlined,
so the plots page works wherever it is copied, e.g. as an MLflow artifact) and
fmnist/web/data_docs/ (the Data Docs scripts, styles and icon font, byte-for-byte as npm ships
them, with their licence files). Bump a version here, rerun, and update README.md.
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
PLOTS_TEMPLATE = WEB_DIR / "dvc_plots.html"
DATA_DOCS_ASSETS = WEB_DIR / "data_docs"

# The last majors DVC's templates (Vega-Lite v5 schema) and GX's pages are written for.
VEGA = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
# The vega npm tarball ships no LICENSE file; this is the vega/vega repository's.
VEGA_LICENSE = """Copyright (c) 2015-2023, University of Washington Interactive Data Lab
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this
   list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors
  may be used to endorse or promote products derived from this software
  without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT OWNER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

# The exact versions GX 1.24's pages ask for; package file -> file under data_docs/.
DATA_DOCS_PACKAGES = {
    "jquery@3.7.1": {"dist/jquery.min.js": "jquery.min.js",
                     "LICENSE.txt": "licenses/jquery.txt"},
    "popper.js@1.12.9": {"dist/umd/popper.min.js": "popper.min.js"},  # MIT notice in its header
    "bootstrap@4.3.1": {"dist/js/bootstrap.min.js": "bootstrap.min.js",
                        "dist/css/bootstrap.min.css": "bootstrap.min.css",
                        "LICENSE": "licenses/bootstrap.txt"},
    "bootstrap-table@1.19.1": {
        "dist/bootstrap-table.min.js": "bootstrap-table.min.js",
        "dist/bootstrap-table.min.css": "bootstrap-table.min.css",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
            "bootstrap-table-filter-control.min.js",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
            "bootstrap-table-filter-control.min.css",
        "LICENSE": "licenses/bootstrap-table.txt"},
    # The index page's run-time filter is a date picker.
    "bootstrap-datepicker@1.9.0": {
        "dist/js/bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js",
        "dist/css/bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
        "LICENSE": "licenses/bootstrap-datepicker.txt"},
    # The solid face only: every icon GX draws is solid, and a browser fetches a face only
    # when a page uses it.
    "@fortawesome/fontawesome-free@6.6.0": {
        "css/all.min.css": "fontawesome/css/all.min.css",
        "webfonts/fa-solid-900.woff2": "fontawesome/webfonts/fa-solid-900.woff2",
        "LICENSE.txt": "licenses/fontawesome-free.txt"},
}

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite and Vega-Embed inlined (fmnist/web/vendor.py writes this file); no
         scripts placeholder, which DVC would fill with <script> tags that load from a CDN. -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def npm_pack(specs: list[str], into: Path) -> dict[str, Path]:
    """Download npm tarballs (`npm pack`, no install, no scripts run); spec -> unpacked folder."""
    subprocess.run(["npm", "pack", "--silent", *specs], cwd=into, check=True,
                   stdout=subprocess.DEVNULL, timeout=300)
    folders = {}
    for spec in specs:
        name, version = spec.rsplit("@", 1)
        tarball = into / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        folder = into / tarball.stem
        with tarfile.open(tarball) as archive:
            archive.extractall(folder, filter="data")
        folders[spec] = folder / "package"
    return folders


def inline_script(name: str, version: str, source: str, licence: str) -> str:
    """One <script> element: the licence as a comment, then the minified build."""
    code = "\n".join(line for line in source.splitlines()
                     if not line.startswith("//# sourceMappingURL="))  # no .map to fetch
    for forbidden in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}"):
        if forbidden in code:  # would end the element early, or DVC would substitute into it
            raise ValueError(f"{name} {version} contains {forbidden!r}; cannot inline it")
    return (f"<script>\n/*! {name} {version} (npm), BSD-3-Clause:\n{licence.strip()}\n*/\n"
            f"{code}\n</script>")


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        vega_specs = [f"{name}@{version}" for name, version in VEGA.items()]
        folders = npm_pack([*vega_specs, *DATA_DOCS_PACKAGES], Path(scratch))
        scripts = []
        for spec in vega_specs:
            name, version = spec.rsplit("@", 1)
            package = folders[spec]
            licence_file = package / "LICENSE"
            licence = licence_file.read_text() if licence_file.exists() else VEGA_LICENSE
            source = (package / "build" / f"{name}.min.js").read_text(encoding="utf-8")
            scripts.append(inline_script(name, version, source, licence))
        PLOTS_TEMPLATE.write_text(PAGE.format(scripts="\n".join(scripts)), encoding="utf-8")

        shutil.rmtree(DATA_DOCS_ASSETS, ignore_errors=True)
        for spec, files in DATA_DOCS_PACKAGES.items():
            for source, target in files.items():
                (DATA_DOCS_ASSETS / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folders[spec] / source, DATA_DOCS_ASSETS / target)
    print(f"wrote {PLOTS_TEMPLATE} and {DATA_DOCS_ASSETS}/")


if __name__ == "__main__":
    main()
