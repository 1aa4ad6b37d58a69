"""The output folder of an example: ``--out DIR``, or a new temporary folder by default, so
running an example never overwrites committed files (docs/img is regenerated on purpose only,
with ``--out docs/img``)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def out_dir(doc: str, script: str) -> Path:
    """Parse ``--out`` for the example ``script`` (its ``__file__``) described by ``doc``."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="folder for the files written (default: a new "
                        "temporary folder)")
    out = parser.parse_args().out or Path(tempfile.mkdtemp(prefix=f"stablernn-{Path(script).stem}-"))
    out.mkdir(parents=True, exist_ok=True)
    return out
