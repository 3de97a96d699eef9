"""How good the pipeline is, on held-out images: the score with image-level numbers and the
threshold sweep (evaluate), results by group of a benchmark's figures (groups), a browsable
gallery of the worst failures (gallery), the copy-move matcher's evaluation on a benchmark
(matcher), and the networks-against-matcher table (comparison)."""
