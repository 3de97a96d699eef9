"""The data the project reads and makes, below any network: the Kaggle layout and its cached
manifest (manifest), the one validation split (split), the ground truth of held-out images
(truths), the augmentation recipes (augment), phase 0's augmented copies written next to the
originals (augmented_data), and the generator of synthetic figures with copy-move forgeries
that the demo, the tests and the benchmark use (demo)."""
