"""`verticals.retrieval` is `verticals.backbones.retrieval` (moved in issue 26; the old name stays importable)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("verticals.backbones.retrieval")
