"""genlab-eval's scoring harness: any source of samples against any reference.

sources.py (checkpoints, image folders, arrays) and references.py (dataset splits,
folders, arrays, statistics files) turn inputs into images and features; scoring.py
measures one source; comparison.py puts several in one table; memorization.py and
classifier_scores.py answer the questions asked after FID; standalone.py exports a
generator for use without genlab.
"""
