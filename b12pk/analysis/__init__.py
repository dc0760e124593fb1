"""Analyses over simulations, each returning a result object and neither plotting nor
writing: :mod:`.compare` (regimens x patients), :mod:`.validate` (model vs trial data),
:mod:`.evidence` (the seed documents' claims), :mod:`.calibrate` (fits of parameters).

Layer: above ``engine`` and ``population``; below ``plot`` and ``report``.
"""
