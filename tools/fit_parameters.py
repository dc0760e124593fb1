"""Fit the parameters marked ``fitted`` (see data/calibration.toml for the training set).

``python tools/fit_parameters.py`` prints the fitted values and their uncertainty next to
those in the data files; ``--write`` writes them back with the fit's date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from b12pk.analysis.calibrate import current_values, fit, write_fit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the fitted values to data/")
    args = ap.parse_args(argv)
    fitted = fit()
    now = current_values()
    print(f"{'quantity':44s} {'in file':>12s} {'fitted':>12s}")
    for k, v in fitted.items():
        print(f"{k:44s} {now[k] if k in now else float('nan'):12.6g} {v:12.6g}")
    if args.write:
        write_fit(fitted)
        print("written to data/model.toml, data/patients.toml and data/calibration.toml")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
