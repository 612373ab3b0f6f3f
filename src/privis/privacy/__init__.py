"""Closed-form analyses and accountants (VisualMixer bounds, keyspace sizes, RDP of the Gaussian mechanism and
DP-Image's bounds, empirical audits of epsilon)."""

from privis.privacy.dp_image import BoundStatement, DPImageBounds, dp_image_bounds, sensitivity
from privis.privacy.keyspace import (
    KeyspaceAnalysis,
    binary_entropy,
    keyspace_analysis,
    keyspace_bits,
    keyspace_bits_from_counts,
    keyspace_bits_paper,
    log2_factorial,
)
from privis.privacy.rdp import (
    Conversion,
    classic_epsilon,
    classic_optimum_linear,
    gaussian_epsilon,
    gaussian_rdp,
    rdp_to_dp,
    sigma_for_epsilon,
    tight_epsilon,
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
    "BoundStatement",
    "Conversion",
    "DPImageBounds",
    "KeyspaceAnalysis",
    "PAPER_TABLE1",
    "alpha0",
    "binary_entropy",
    "classic_epsilon",
    "classic_optimum_linear",
    "diff_max_samples",
    "dp_image_bounds",
    "enumerate_base_case",
    "gaussian_epsilon",
    "gaussian_rdp",
    "keyspace_analysis",
    "keyspace_bits",
    "keyspace_bits_from_counts",
    "keyspace_bits_paper",
    "log2_factorial",
    "prob_vfe_at_least",
    "rdp_to_dp",
    "sensitivity",
    "sigma_for_epsilon",
    "table1_comparison",
    "tight_epsilon",
    "vfe_distribution",
    "window_lower_bound",
    "window_upper_bound",
    "window_variances",
]
