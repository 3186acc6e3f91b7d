"""``danet predict``: files, folders and videos to label, colour and overlay PNGs.

Segmenting arrays in memory is :mod:`danet.model.segment`'s job (``DANet.predict``).
"""
