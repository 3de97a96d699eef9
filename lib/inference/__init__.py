"""From images to predicted instances: the one two-pass predictor (infer: classifier gate,
segmentation ensemble with flip TTA, specialist, per-image cache), post-processing of a
probability map into instances (postprocess), the copy-move matcher as a pipeline member, run
in parallel and cached, and its fusion with the networks (fusion), and the self-correlation
input channels built from the matcher for the selfcorr network (selfcorr)."""
