"""`skin bench`: PyTorch vs ONNX Runtime, same work, same threads, one run; a table a person reads at a glance.

``suite`` decides what is measured, ``workers`` measures one row in a fresh process (so peak memory is that
row's own and thread settings cannot leak between engines), ``report`` prints and writes the results.
"""
