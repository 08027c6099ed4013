"""Training (extra ``[train]``: torch, torchvision, timm, scikit-learn, matplotlib).

``config`` (every option, saved with the run), ``data`` (datasets, splits, transforms), ``losses``,
``metrics``, ``model`` (timm models and weight loading), ``engine`` (the loop, checkpoints, resume, run
directory), ``import_weights`` (offline ImageNet initialisation).
"""
