"""Your estimator factories, named in `training.candidate` as `training.models.<module>:<function>`."""
