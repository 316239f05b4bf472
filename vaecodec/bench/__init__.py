"""``vaecodec bench``: rate–distortion and speed of vaecodec against other image codecs.

``codecs`` adapts each codec to one interface, ``metrics`` and ``bdrate`` hold the measures,
``run`` measures and saves, ``summary`` averages, ``report`` writes report.md and the plots, and
``command`` is the command line.
"""
