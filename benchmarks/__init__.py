"""beamtrack's benchmark suite: ``python -m benchmarks`` (see ``benchmarks/__main__.py``).

The standalone scripts in this folder (``tracking_speed.py``, ``compile_time.py``, ...)
keep working on their own; the suite imports their functions where they fit.
"""
