"""TensorFlow adapter (being written: see issue 2)."""

from __future__ import annotations

from normcheck.adapters.base import Adapter, Impl


class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    module = "tensorflow"
    distribution = "tensorflow-cpu"

    def implementations(self) -> list[Impl]:
        return []


ADAPTER = TensorFlowAdapter()
