"""Extracts a wheel (a zip) into a directory, keeping the files' modes, which a plain unzip
drops: the PostgreSQL builds of the pgserver wheels need their executable bits, and their
binaries find their libraries through an RPATH relative to the wheel's own layout, so the
layout is kept whole.

Usage: python3 scripts/unwheel.py WHEEL DIR
"""
import os
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if ".dist-info/" in name:
            continue
        out = os.path.normpath(os.path.join(dest, name))
        if not out.startswith(os.path.normpath(dest) + os.sep):
            sys.exit(f"unsafe path in {wheel}: {name}")
        if name.endswith("/"):
            os.makedirs(out, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            dst.write(src.read())
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(out, mode)
