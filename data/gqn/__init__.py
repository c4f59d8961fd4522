"""TFDS dataset `gqn` (see gqn_dataset_builder.py); `tfds build data/gqn` finds it here."""
