"""Random-effects neural networks (RENN): y = f(x) + b_site + e.

Modules: ``likelihood`` (closed-form minibatch losses and the exact NLL), ``samplers`` (epoch
plans), ``model`` (stacked MLP / intercept), ``optim`` (stacked AdamW), ``spec`` (configurations
and profiles), ``train`` (``fit_renn``), ``evaluate`` (BLUP and held-out metrics), ``baselines``
(exact-ML linear mixed models), ``data`` (tables and splits), ``simulate`` and ``checkpoints``.
"""
