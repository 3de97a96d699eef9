"""Images on disk and what training reads from them: image and mask reading with one-line
errors (imageio), the Kaggle layout and its cached manifest (manifest), the one validation
split (split), torch datasets, sampling weights and the hard-negative file (datasets), the
augmentation recipes (augment) and phase 0's augmented copies written next to the originals
(augmented_data)."""
