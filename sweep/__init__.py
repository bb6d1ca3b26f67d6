"""bpnet.sweep: hyperparameter sweeps on Optuna.

A sweep file (YAML, :mod:`bpnet.sweep.spec`) names a base config, fixed overrides and a search
space over dotted config keys; every trial is that config with the sampled values, trained in
memory (no run directory) on the validation split. Trials run in worker processes
(:mod:`bpnet.sweep.workers`, one BLAS thread each) that share one Optuna study through its
storage (:mod:`bpnet.sweep.study`): a journal file by default, or any Optuna storage URL, so
several commands on several machines share one study. :mod:`bpnet.sweep.results` writes what is
left: trials.csv, best.yaml and sweep.png.

Optuna (``pip install 'bpnet[sweep]'``) is imported inside the functions that need it.
"""

from bpnet.base.compat import exports

__getattr__, __dir__ = exports(
    __name__,
    {
        "load_sweep": "bpnet.sweep.spec",
        "list_sweeps": "bpnet.sweep.spec",
        "run_sweep": "bpnet.sweep.workers",
        "open_study": "bpnet.sweep.study",
    },
)
__all__ = ["list_sweeps", "load_sweep", "open_study", "run_sweep"]
