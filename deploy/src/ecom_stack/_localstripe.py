"""Run localstripe on 127.0.0.1 with its store in memory or in a file we choose.

`python -m ecom_stack._localstripe PORT [STORE_FILE]`

localstripe's own command listens on every interface and pickles its whole store to a fixed
`/tmp/localstripe.pickle` after each write (shared by every stack on the machine), so we
replace the two store methods before serving its aiohttp app.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    port = int(sys.argv[1])
    store_file = Path(sys.argv[2]) if len(sys.argv) > 2 else None

    def dump(store: resources.Store) -> None:
        if store_file is None:
            return  # ephemeral: memory only
        tmp = store_file.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, store_file)  # atomic, so a kill mid-write keeps the previous state

    def load(store: resources.Store) -> None:
        if store_file is not None and store_file.exists():
            with open(store_file, "rb") as f:
                dict.update(store, pickle.load(f))  # noqa: S301 (our own file)

    resources.Store.dump_to_disk = dump
    resources.Store.try_load_from_disk = load
    resources.store.try_load_from_disk()
    web.run_app(server.app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
