"""``vaekit sweep``: Optuna searches whose trials are run folders.

``spec`` reads and checks the sweep file, ``run`` runs the trials (one worker or several sharing a
study), ``report`` writes the trials table and the comparison report.
"""

from vaekit.sweep.run import run_sweep
from vaekit.sweep.spec import Sweep, read_sweep_file

__all__ = ["Sweep", "read_sweep_file", "run_sweep"]
