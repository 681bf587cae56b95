#!/usr/bin/env python3
"""Rebuilds res/v5.17.14.zip from the crates.io package utoipa-swagger-ui-vendored 0.1.2.

    python3 make-zip.py ~/.cargo/registry/src/*/utoipa-swagger-ui-vendored-0.1.2/res/v5.17.14.zip

Keeps Swagger UI's LICENSE and NOTICE and the dist/ files the page loads; drops the source maps,
the ES-module bundles and the unbundled swagger-ui.js (9 MB of the 11 MB). Fixed timestamps, so
the same input gives the same bytes.
"""
import sys
import zipfile
from pathlib import Path

KEEP_DIST = {
    "favicon-16x16.png", "favicon-32x32.png", "index.css", "index.html", "oauth2-redirect.html",
    "swagger-initializer.js", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
}
STAMP = (2024, 5, 28, 0, 0, 0)

def main(source: str) -> None:
    src = zipfile.ZipFile(source)
    out_path = Path(__file__).with_name("res") / "v5.17.14.zip"
    with zipfile.ZipFile(out_path, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            parts = name.split("/")
            is_dir = name.endswith("/")
            keep_dir = is_dir and (len(parts) == 2 or (len(parts) == 3 and parts[1] == "dist"))
            keep_file = not is_dir and (
                (len(parts) == 3 and parts[1] == "dist" and parts[2] in KEEP_DIST)
                or (len(parts) == 2 and parts[1] in ("LICENSE", "NOTICE"))
            )
            if not (keep_dir or keep_file):
                continue
            info = zipfile.ZipInfo(name, date_time=STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if is_dir else 0o644) << 16
            out.writestr(info, b"" if is_dir else src.read(name))
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes)")

if __name__ == "__main__":
    main(sys.argv[1])
