"""Torch adapter (being written: see issue 2)."""

from __future__ import annotations

from normcheck.adapters.base import Adapter, Impl


class TorchAdapter(Adapter):
    name = "torch"
    module = "torch"

    def implementations(self) -> list[Impl]:
        return []


ADAPTER = TorchAdapter()
