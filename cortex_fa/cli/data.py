"""``cortex-fa data``: fetch, verify and describe the MNIST files.

Examples
--------
::

    cortex-fa data fetch                 # prints the directory of the verified files
    cortex-fa data verify --data-dir DIR # four SHA-256 values and OK, or exit 2
    cortex-fa data info                  # paths, sizes, counts, pixel mean/std
"""

from __future__ import annotations

import os
from pathlib import Path

# cortex_fa.data (and numpy) are imported inside the handlers: the dispatcher
# imports every sub-command module to build --help, which should stay fast.


def register(subparsers) -> None:
    """Add the ``data`` command and its ``fetch``/``verify``/``info`` actions."""
    parser = subparsers.add_parser(
        "data", help="fetch, verify and describe the MNIST files",
        description="Fetch, verify and describe the MNIST IDX files. Without --data-dir "
                    "the files come from $CORTEX_FA_DATA_DIR, else from the cache "
                    "($CORTEX_FA_CACHE_DIR or the user cache directory).",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True,
                                    parser_class=type(parser))

    fetch = actions.add_parser("fetch", help="make verified MNIST available and print where",
                               description="Fetch MNIST into the cache unless already present "
                                           "and verified; print the directory of the files.")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(func=_fetch)

    verify = actions.add_parser("verify", help="check the SHA-256 of the four files",
                                description="Check the four files without fetching or "
                                            "changing anything; exit 2 on any problem.")
    verify.set_defaults(func=_verify)

    info = actions.add_parser("info", help="paths, sizes, hashes, counts, pixel statistics",
                              description="Describe the verified files (does not fetch).")
    info.set_defaults(func=_info)

    for sub in (fetch, verify, info):
        sub.add_argument("--data-dir", type=Path, metavar="DIR",
                         help="directory holding the four uncompressed IDX files")


def _fetch(args) -> int:
    from cortex_fa.data import fetch_mnist

    print(fetch_mnist(args.data_dir, progress=not args.quiet))
    return 0


def _verify(args) -> int:
    from cortex_fa.data import FILES, combined_sha256, default_cache_dir, verify_mnist

    # Verify exactly the directory asked for; the cache only when none is named.
    directory = args.data_dir or os.environ.get("CORTEX_FA_DATA_DIR") or default_cache_dir()
    digests = verify_mnist(directory)
    print(directory)
    for name in FILES:
        print(f"{digests[name]}  {name}  OK")
    print(f"data_sha256 {combined_sha256(digests)}")
    return 0


def _info(args) -> int:
    from cortex_fa.data import mnist_info

    info = mnist_info(args.data_dir)
    print(f"directory    {info['directory']}")
    for name, f in info["files"].items():
        print(f"{name:<24} {f['bytes']:>9} bytes  sha256 {f['sha256']}  {f['path']}")
    print(f"data_sha256  {info['data_sha256']}")
    for split in ("train", "test"):
        counts = " ".join(str(c) for c in info[f"{split}_class_counts"])
        print(f"{split:<5} {info[f'{split}_count']:>6} examples; per class 0-9: {counts}")
    print(f"train pixels /255: mean {info['mean']:.4f}  std {info['std']:.4f}")
    return 0
