"""Jax adapter (being written: see issue 2)."""

from __future__ import annotations

from normcheck.adapters.base import Adapter, Impl


class JaxAdapter(Adapter):
    name = "jax"
    module = "jax"

    def implementations(self) -> list[Impl]:
        return []


ADAPTER = JaxAdapter()
