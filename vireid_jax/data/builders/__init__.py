"""TFDS builders: raw dataset folder in (manual download), TFRecords out."""
