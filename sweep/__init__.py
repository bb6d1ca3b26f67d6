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
