#!/usr/bin/env python3
"""Exports a time-series foundation model to a tsfm/v1 TorchScript file for
the OpenAnomaly sidecar (libtorch/MODELS.md):

    python libtorch/export.py --model amazon/chronos-bolt-small --context 2048 \\
        --horizon 64 --device cuda --out chronos-bolt-small.pt
    python libtorch/export.py --list

Run it with the torch the Go binary links: make export-deps installs the
pinned packages into that venv and prints its python. --random-init builds
the official architecture with random weights (no download), --checkpoint DIR
loads a local copy of the checkpoint, otherwise the official from_pretrained
fetches it from the Hugging Face hub.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tsfm_export.common import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
