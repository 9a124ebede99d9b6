"""Input side: raw layouts, TFDS builders, synthetic data, samplers, augmentation, tf.data.

This is the only package that imports TensorFlow, and only in the modules that need it
(`builders`, `augment`, `pipeline`); `layouts`, `sampling` and `synthetic` are NumPy-only.
"""
