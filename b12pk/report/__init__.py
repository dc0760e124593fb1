"""Reports and output folders, each written atomically through :mod:`b12pk.io`:
:mod:`.comparison` (the regimen-comparison report: HTML, Markdown, CSV, figures,
``run.json``), :mod:`.population`, :mod:`.validation` and :mod:`.evidence` (imported on use:
``b12pk.report.evidence.write_evidence``; the first two are also ``b12pk.write_population``
and ``b12pk.write_evidence``).

Layer: the top, below only the command line.
"""

from .comparison import write_report

__all__ = ["write_report"]
