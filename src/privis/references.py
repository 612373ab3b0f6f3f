"""The papers privis implements or measures against, cited the way a reader can find them.

Each constant is one citation string (authors, title, venue, year, and a DOI or arXiv id where one is
confirmed); a protector's or attack's ``citation`` attribute is one of these, and ``privis methods`` /
``privis attacks`` print it.

Examples:
    >>> from privis import references
    >>> "arXiv:2404.04098" in references.VISUALMIXER
    True
    >>> from privis.methods.veil import Veil
    >>> Veil.citation == references.VEIL
    True
"""

from __future__ import annotations

VEIL = ('Shuchao Pang, Ruhao Ma, Bing Li, Yongbin Zhou and Yazhou Yao, "Veil Privacy on Visual Data: '
        'Concealing Privacy for Humans, Unveiling for DNNs", European Conference on Computer Vision (ECCV), 2024.')

VISUALMIXER = ('Qiushi Li, Yan Zhang, Ju Ren, Qi Li and Yaoxue Zhang, "You Can Use But Cannot Recognize: '
               'Preserving Visual Privacy in Deep Neural Networks", Network and Distributed System Security '
               'Symposium (NDSS), 2024, arXiv:2404.04098.')

PROTECTIVE_PERTURBATION = ('Mengmei Ye, Zhongze Tang, Huy Phan, Yi Xie, Bo Yuan and Sheng Wei, "Visual Privacy '
                           'Protection in Mobile Image Recognition Using Protective Perturbation", 13th ACM '
                           'Multimedia Systems Conference (MMSys), 2022, doi:10.1145/3524273.3528189.')

INSTAHIDE = ('Yangsibo Huang, Zhao Song, Kai Li and Sanjeev Arora, "InstaHide: Instance-hiding Schemes for '
             'Private Distributed Learning", International Conference on Machine Learning (ICML), 2020, '
             'arXiv:2010.02772.')

#: Blur, pixelation and noise as the obfuscation baselines of the image-privacy literature.
OBFUSCATION_BASELINES = ('Richard McPherson, Reza Shokri and Vitaly Shmatikov, "Defeating Image Obfuscation '
                         'with Deep Learning", 2016, arXiv:1609.00408; Hanyu Xue, "A Study on Image Privacy '
                         'Protection in Response to Artificial Intelligence Technology", PhD thesis, University '
                         'of Technology Sydney, 2023.')

#: DP-Image (Chapter 4, Algorithm 6, Theorem 4.4.1) of the thesis.
DP_IMAGE = ('Hanyu Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", '
            'PhD thesis, University of Technology Sydney, 2023, Chapter 4 (DP-Image: Differential Privacy for '
            'Image Data in Feature Space).')

#: FSAP (Chapter 5, Algorithm 7, Eq. 5.1-5.12) of the thesis.
FSAP = ('Hanyu Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", '
        'PhD thesis, University of Technology Sydney, 2023, Chapter 5 (FSAP: Feature Space Adversarial '
        'Perturbation Based Face Image De-identification).')

#: The dataset anonymiser (Chapter 6, Section 6.5, Eq. 6.7-6.9) of the thesis and its latent-optimisation ancestor.
LATENT_ANONYMIZER = ('Hanyu Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence '
                     'Technology", PhD thesis, University of Technology Sydney, 2023, Chapter 6 (Diffusion De-ID: '
                     'Diffusion-based Face Dataset Anonymization); Simone Barattin, Christos Tzelepis, Ioannis '
                     'Patras and Nicu Sebe, "Attribute-Preserving Face Dataset Anonymization via Latent Code '
                     'Optimization", IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR), 2023, '
                     'arXiv:2303.11296.')

#: Exemplar networks (the individual image as a class), privis' identity model on data without persons.
EXEMPLAR_CNN = ('Alexey Dosovitskiy, Jost Tobias Springenberg, Martin Riedmiller and Thomas Brox, "Discriminative '
                'Unsupervised Feature Learning with Convolutional Neural Networks", Advances in Neural Information '
                'Processing Systems (NeurIPS), 2014, arXiv:1406.6909.')

#: AP-based object hiding (Chapter 3, Eq. 3.5-3.10, Algorithm 5) of the thesis.
OBJECT_HIDING = ('Hanyu Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", '
                 'PhD thesis, University of Technology Sydney, 2023, Chapter 3 (Adversarial Perturbation based '
                 'Image Privacy Protection against Object Detection, Algorithm 5); Ian J. Goodfellow, Jonathon '
                 'Shlens and Christian Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR, 2015, '
                 'arXiv:1412.6572.')

MEMBERSHIP_INFERENCE = ('Reza Shokri, Marco Stronati, Congzheng Song and Vitaly Shmatikov, "Membership Inference '
                        'Attacks Against Machine Learning Models", IEEE Symposium on Security and Privacy (S&P), '
                        '2017, arXiv:1610.05820; Samuel Yeom, Irene Giacomelli, Matt Fredrikson and Somesh Jha, '
                        '"Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting", IEEE Computer '
                        'Security Foundations Symposium (CSF), 2018.')

MODEL_INVERSION = ('Matt Fredrikson, Somesh Jha and Thomas Ristenpart, "Model Inversion Attacks that Exploit '
                   'Confidence Information and Basic Countermeasures", ACM Conference on Computer and '
                   'Communications Security (CCS), 2015; Aravindh Mahendran and Andrea Vedaldi, "Understanding '
                   'Deep Image Representations by Inverting Them", IEEE Conference on Computer Vision and Pattern '
                   'Recognition (CVPR), 2015.')

DENOISING_FILTERS = ('Carlo Tomasi and Roberto Manduchi, "Bilateral Filtering for Gray and Color Images", IEEE '
                     'International Conference on Computer Vision (ICCV), 1998; Antoni Buades, Bartomeu Coll and '
                     'Jean-Michel Morel, "A Non-Local Algorithm for Image Denoising", IEEE Conference on Computer '
                     'Vision and Pattern Recognition (CVPR), 2005; Antonin Chambolle, "An Algorithm for Total '
                     'Variation Minimization and Applications", Journal of Mathematical Imaging and Vision, 2004.')

INSTANCE_ENCODING = ('Nicholas Carlini, Samuel Deng, Sanjam Garg, Somesh Jha, Saeed Mahloujifar, Mohammad '
                     'Mahmoody, Shuang Song, Abhradeep Thakurta and Florian Tramer, "Is Private Learning Possible '
                     'with Instance Encoding?", IEEE Symposium on Security and Privacy (S&P), 2021, '
                     'doi:10.1109/SP40001.2021.00099, arXiv:2011.05315.')

MIRONOV_2017 = ('Ilya Mironov, "Renyi Differential Privacy", IEEE 30th Computer Security Foundations Symposium '
                '(CSF), 2017, doi:10.1109/CSF.2017.11, arXiv:1702.07476.')

FELDMAN_2018 = ('Vitaly Feldman, Ilya Mironov, Kunal Talwar and Abhradeep Thakurta, "Privacy Amplification by '
                'Iteration", IEEE 59th Annual Symposium on Foundations of Computer Science (FOCS), 2018, '
                'arXiv:1808.06651.')

BALLE_2020 = ('Borja Balle, Gilles Barthe, Marco Gaboardi, Justin Hsu and Tetsuya Sato, "Hypothesis Testing '
              'Interpretations and Renyi Differential Privacy", International Conference on Artificial '
              'Intelligence and Statistics (AISTATS), 2020, arXiv:1905.09982.')

JAGIELSKI_2020 = ('Matthew Jagielski, Jonathan Ullman and Alina Oprea, "Auditing Differentially Private Machine '
                  'Learning: How Private is Private SGD?", Advances in Neural Information Processing Systems '
                  '(NeurIPS), 2020, arXiv:2006.07709.')

#: What a protection leaves unchanged, recovered from its output (VisualMixer's region statistics, InstaHide's
#: and Veil's sign magnitudes).
INVARIANT_RECOVERY = f"{VISUALMIXER}; {INSTANCE_ENCODING}"

#: The known-method restoration adversary both papers evaluate (VisualMixer Sec. V-C, Veil Sec. 4.4).
KNOWN_METHOD_RESTORATION = f"{VISUALMIXER} {VEIL}"

#: The gradient-based region reassembly of VisualMixer Sec. V-C, after the DARPA Shredder Challenge (2011).
SHREDDER_CHALLENGE = f"{VISUALMIXER} (Sec. V-C, after the DARPA Shredder Challenge, 2011)"
ARCFACE = ('Jiankang Deng, Jia Guo, Niannan Xue and Stefanos Zafeiriou, "ArcFace: Additive Angular Margin Loss '
           'for Deep Face Recognition", CVPR 2019, arXiv:1801.07698')
#: The Frechet distance between Gaussian fits of two feature sets (Eq. 6 of the paper; FID on Inception v3).
FRECHET_DISTANCE = ('Martin Heusel, Hubert Ramsauer, Thomas Unterthiner, Bernhard Nessler and Sepp Hochreiter, '
                    '"GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", '
                    'NeurIPS 2017, arXiv:1706.08500')

__all__ = ["ARCFACE", "BALLE_2020", "DENOISING_FILTERS", "DP_IMAGE", "EXEMPLAR_CNN", "FELDMAN_2018",
           "FRECHET_DISTANCE", "FSAP", "INSTAHIDE",
           "INSTANCE_ENCODING", "INVARIANT_RECOVERY", "JAGIELSKI_2020", "KNOWN_METHOD_RESTORATION", "LATENT_ANONYMIZER",
           "MEMBERSHIP_INFERENCE", "MIRONOV_2017", "MODEL_INVERSION", "OBFUSCATION_BASELINES", "OBJECT_HIDING",
           "PROTECTIVE_PERTURBATION", "SHREDDER_CHALLENGE", "VEIL", "VISUALMIXER"]

# Detectors (privis.detectors) and the detection metrics (privis.metrics.detection).
DLIB_HOG = ('Navneet Dalal and Bill Triggs, "Histograms of Oriented Gradients for Human Detection", IEEE Conference '
            'on Computer Vision and Pattern Recognition (CVPR), 2005, doi:10.1109/CVPR.2005.177; Davis E. King, '
            '"Dlib-ml: A Machine Learning Toolkit", Journal of Machine Learning Research, 2009.')
DLIB_MMOD = ('Davis E. King, "Max-Margin Object Detection", arXiv preprint, 2015, arXiv:1502.00046; Davis E. King, '
             '"Dlib-ml: A Machine Learning Toolkit", Journal of Machine Learning Research, 2009.')
MTCNN = ('Kaipeng Zhang, Zhanpeng Zhang, Zhifeng Li and Yu Qiao, "Joint Face Detection and Alignment Using Multitask '
         'Cascaded Convolutional Networks", IEEE Signal Processing Letters, 2016, doi:10.1109/LSP.2016.2603342, '
         'arXiv:1604.02878.')
CENTERFACE = ('Yuanyuan Xu, Wan Yan, Haixin Sun, Genke Yang and Jiliu Luo, "CenterFace: Joint Face Detection and '
              'Alignment Using Face as Point", Scientific Programming, 2020, arXiv:1911.03599.')
FASTER_RCNN = ('Shaoqing Ren, Kaiming He, Ross Girshick and Jian Sun, "Faster R-CNN: Towards Real-Time Object '
               'Detection with Region Proposal Networks", Advances in Neural Information Processing Systems (NeurIPS), '
               '2015, arXiv:1506.01497.')
CENTERNET = ('Xingyi Zhou, Dequan Wang and Philipp Krähenbühl, "Objects as Points", arXiv preprint, 2019, '
             'arXiv:1904.07850.')
PASCAL_VOC = ('Mark Everingham, Luc Van Gool, Christopher K. I. Williams, John Winn and Andrew Zisserman, "The Pascal '
              'Visual Object Classes (VOC) Challenge", International Journal of Computer Vision, 2010, '
              'doi:10.1007/s11263-009-0275-4.')

__all__ += ["CENTERFACE", "CENTERNET", "DLIB_HOG", "DLIB_MMOD", "FASTER_RCNN", "MTCNN", "PASCAL_VOC"]
