"""``danet predict``: files, folders and videos to label, colour and overlay PNGs.

Segmenting arrays in memory is :mod:`danet.utils.inference`'s job, for every command and
``model.predict``; this package reads and writes the files.
"""
