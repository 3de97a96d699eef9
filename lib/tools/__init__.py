"""What runs the detector end to end and ships it: the full pipeline's phases as
subprocesses, with their inputs checked before anything starts (pipeline), the offline Kaggle
package with its checkpoints' hashes (kaggle), and timing of the batched predictor and of the
matcher against the straightforward loops they replace (benchmark)."""
