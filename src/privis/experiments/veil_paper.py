"""The figures Veil's paper reports in its Tables 2-5, transcribed for the reports' "paper beside privis" tables.

S. Pang, R. Ma, B. Li, Y. Zhou and Y. Yao, "Veil Privacy on Visual Data: Concealing Privacy for Humans,
Unveiling for DNNs", ECCV 2024, Tables 2-5.
"""

from __future__ import annotations

#: The paper's reported values (Pang et al., ECCV 2024) as fractions, by table, then the paper's data set
#: (with its backbone where the paper names one), then privis' quantity name. Table 2's four accuracies are
#: transcribed in the column order of its header (baseline model on original / veiled data, veiled model on
#: original / veiled data); Table 4 reports face sets only; Table 5 names no data set, and its ``Fc3``
#: column repeats ORL's Table 2 accuracy and Table 3 |SSIM| values, so it is filed under ORL. Values the
#: paper gives only in its text are in :data:`PAPER_NOTES`.
_TABLE2_KEYS = ("baseline_on_original", "baseline_on_veiled", "veiled_on_original", "veiled_on_veiled")
_TABLE3_KEYS = ("example_1", "example_2", "example_3")
_TABLE4_KEYS = ("combination_total", "combination_original_classes", "combination_veiled_class_on_veiled",
                "finetune_total", "finetune_original_classes", "finetune_new_class_on_veiled",
                "transfer_on_veiled", "transfer_on_original")
_TABLE5_KEYS = ("ssim_example_1", "ssim_example_2", "ssim_example_3", "acc_on_veiled", "acc_on_original")
PAPER_VALUES: dict[str, dict[str, dict[str, float]]] = {
    table: {name: dict(zip(keys, values, strict=True)) for name, values in columns.items()}
    for table, keys, columns in (
        ("table2", _TABLE2_KEYS, {
            "MNIST (AlexNet)": (0.9913, 0.9858, 0.9660, 0.9660),
            "CIFAR10 (AlexNet)": (0.8599, 0.8409, 0.8173, 0.8173),
            "CIFAR100 (ViT)": (0.8735, 0.8322, 0.8186, 0.8186),
            "ORL (LeNet-5)": (0.9697, 0.9697, 0.9697, 0.9697),
            "BioID (VGG16)": (0.9934, 0.9868, 0.9801, 0.9801),
            "LFW (VGG16)": (0.8889, 0.8889, 0.8519, 0.8519),
            "CelebA (VGG16)": (0.8796, 0.8709, 0.8387, 0.8387),
            "RSS (ResNet18)": (0.8850, 0.8662, 0.8536, 0.8536)}),
        ("table3", _TABLE3_KEYS, {
            "MNIST": (0.02130, 0.02835, 0.04311),
            "CIFAR10": (0.00331, 0.01100, 0.02144),
            "CIFAR100": (0.08573, 0.02004, 0.02988),
            "ORL": (0.03130, 0.04346, 0.03576),
            "BioID": (0.02903, 0.05010, 0.05238),
            "LFW": (0.06522, 0.05702, 0.05366),
            "CelebA": (0.03024, 0.04417, 0.01773)}),
        ("table4", _TABLE4_KEYS, {
            "ORL (LeNet-5)": (0.9697, 0.9688, 1.0, 0.9722, 0.9697, 1.0, 0.9697, 0.9697),
            "BioID (VGG16)": (0.9934, 0.9933, 1.0, 0.9935, 0.9934, 1.0, 0.9801, 0.9536),
            "LFW (VGG16)": (0.8889, 0.8637, 1.0, 0.8929, 0.8889, 1.0, 0.8519, 0.8507)}),
        ("table5", _TABLE5_KEYS, {
            "noise (no RPF)": (0.01031, 0.00735, 0.00723, 0.9394, 0.5576),
            "p=0.3": (0.14702, 0.17094, 0.18134, 0.9697, 0.9697),
            "p=0.4": (0.08653, 0.09527, 0.09172, 0.9697, 0.9697),
            "p=0.5": (0.03478, 0.03607, 0.01760, 0.9697, 0.9697),
            "F = logits (fc3)": (0.03130, 0.04346, 0.03576, 0.9697, 0.9697),
            "F = fc2": (0.04429, 0.05021, 0.04818, 0.9697, 0.9697),
            "F = fc1": (0.05292, 0.06085, 0.05899, 0.9697, 0.9697),
            "F = conv": (0.10403, 0.11821, 0.11647, 0.9697, 0.9697)}),
    )
}

#: The paper column shown beside privis' in each comparison table: MNIST where the paper reports it, else
#: ORL (the paper's LeNet-5 data set).
PAPER_COLUMN = {"table2": "MNIST (AlexNet)", "table3": "MNIST", "table4": "ORL (LeNet-5)",
                "table5": "ORL (LeNet-5)"}

#: What the paper says only in its text, or where its text and tables disagree.
PAPER_NOTES: dict[str, list[str]] = {
    "table2": ["The paper's text reads Table 2's second column as the veiled model on veiled data (MNIST: "
               "98.58 %), its header as the baseline on veiled data; the values here follow the header."],
    "table3": ["The paper reports three example images per data set and states that 'all SSIMs almost remain "
               "below 0.05'; privis adds the mean and quantiles over the whole test set."],
    "table4": ["The paper's text adds that every combination and fine-tuning model scores 100 % on the "
               "substituted / new class of the original data; Table 4 has no MNIST column, so ORL is shown."],
    "table5": ["Table 5 names no data set; its Fc3 column equals ORL's Table 2 and 3 values, so ORL is shown. "
               "The paper's |SSIM| is the mean of its images A-C, privis' the mean over the test set. The text "
               "gives the noise model 96.94 % on veiled data (the table: 93.94 %), and says only in words "
               "that RPF without GIA 'destroys the utility' and GIA without RPF gives no visual distinction."],
}

DIFFERENT_DATA = ("The paper's column is another data set than privis' (the paper reports MNIST, CIFAR and "
                  "face sets; privis runs Fashion-MNIST and scikit-learn digits): the figures are shown side "
                  "by side, not as a like-for-like comparison.")
