"""Figures for people, one module per experiment, all drawn in one style.

:mod:`~cnnlab.figures.style` holds what they share: the architecture colours (plain nets always blue,
residual nets always vermillion; Okabe-Ito, colour-blind safe), matplotlib's settings and the atomic
:func:`~cnnlab.figures.style.save_figure`. Then :mod:`~cnnlab.figures.classifiers` (plain vs residual
accuracy), :mod:`~cnnlab.figures.gradients` (gradient statistics), :mod:`~cnnlab.figures.segmentation`
(segmented MNIST and the FCN results) and :mod:`~cnnlab.figures.gradcam`.
"""
