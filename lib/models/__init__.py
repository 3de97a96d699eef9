"""What a network is: the attention FPN segmenter and the classifier built by name
(networks), the losses (losses), the training variants that differ only in config (variants),
and checkpoint files, safetensors for models and a resume state for a run's own use
(checkpoints). Nothing here reads data: the layers above feed these."""
