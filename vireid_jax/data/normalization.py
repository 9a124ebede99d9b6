"""Pixel normalisation constants, free of TensorFlow so evaluation and inference can share them.

The references normalise with torchvision's `Normalize` on ImageNet statistics (spec
baseline §3.1): `(pixel / 255 - mean) / std`, per RGB channel.
"""

# ImageNet statistics in RGB order.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
