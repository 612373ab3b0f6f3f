"""Running a protector over a dataset: batching and writing each batch as soon as it is protected."""

from privis.engine.local import protect_dataset

__all__ = ["protect_dataset"]
