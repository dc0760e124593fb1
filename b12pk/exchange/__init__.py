"""Model exchange: :mod:`.sbml` writes the model declaration, a patient and a regimen as
SBML Level 3 (``b12pk[sbml]`` to check it in libRoadRunner).

Layer: above ``engine``; below ``analysis``.
"""
