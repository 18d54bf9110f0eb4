"""The benchmark behind bench/run.py, one module per part (bench/README.md
describes the method). ``settings`` imports neither NumPy nor cbackprop, so
run.py can set the thread counts from it before they load."""
