"""Input side: raw layouts, TFDS builders, synthetic data, samplers, augmentation, tf.data.

This is the only package that imports TensorFlow, and only in the modules that need it
(`builders`, `augment`, `pipeline`, `datasets`); `splits`, `layouts`, `sampling`, `synthetic`
and `target_domains` are NumPy-only, so methods, the loop and evaluation can import `splits`;
`device_augment` (the recipes in jnp, run inside the train step) is JAX-only.

Registries that a method's config names: `sampling.SAMPLERS` (`config.data.sampler`),
`views.AUGMENTATIONS` (`config.data.augmentation`), `augment.RECIPES` (the views they use)
and their device twins `device_augment.DEVICE_RECIPES` (`config.data.augment_on`).
"""
