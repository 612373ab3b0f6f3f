"""Closed-form analyses and accountants (VisualMixer bounds, keyspace sizes)."""

from privis.privacy.keyspace import (
    KeyspaceAnalysis,
    binary_entropy,
    keyspace_analysis,
    keyspace_bits,
    keyspace_bits_from_counts,
    keyspace_bits_paper,
    log2_factorial,
)
from privis.privacy.visualmixer_bounds import (
    ARRANGEMENTS,
    PAPER_TABLE1,
    alpha0,
    diff_max_samples,
    enumerate_base_case,
    prob_vfe_at_least,
    table1_comparison,
    vfe_distribution,
    window_lower_bound,
    window_upper_bound,
    window_variances,
)

__all__ = [
    "ARRANGEMENTS",
    "KeyspaceAnalysis",
    "PAPER_TABLE1",
    "alpha0",
    "binary_entropy",
    "diff_max_samples",
    "enumerate_base_case",
    "keyspace_analysis",
    "keyspace_bits",
    "keyspace_bits_from_counts",
    "keyspace_bits_paper",
    "log2_factorial",
    "prob_vfe_at_least",
    "table1_comparison",
    "vfe_distribution",
    "window_lower_bound",
    "window_upper_bound",
    "window_variances",
]
