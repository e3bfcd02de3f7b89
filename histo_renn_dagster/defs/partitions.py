"""Partition definitions: one place for every partition key set in the platform."""

from __future__ import annotations

import dagster as dg

SLIDES_PARTITION = "slides"
"""Name of the dynamic partition set: one key per GDC slide file id."""

slides_partitions = dg.DynamicPartitionsDefinition(name=SLIDES_PARTITION)

MINIBATCH_SIZES: tuple[str, ...] = ("2", "4", "8", "16", "32", "150")
"""The reference study's minibatch-size grid; one ``renn_model`` partition per size."""

minibatch_partitions = dg.StaticPartitionsDefinition(list(MINIBATCH_SIZES))
