"""Training and evaluation: the recipe, the loop, losses, metrics, the run folder.

The modules are imported one by one (``danet.training.loop``, ...): :mod:`danet.training.config`
and :mod:`danet.training.runfolder` load no torch, so the command line can read them quickly.
"""
