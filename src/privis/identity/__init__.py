"""Identity models: embeddings, a similarity and a match threshold, for identity-privacy metrics."""

from privis.identity.base import IdentityModel

__all__ = ["IdentityModel"]
