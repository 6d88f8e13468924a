"""`agecli demo`: the command above the API (`agecli.api.AgeEstimator`), never imported
by `agecli.infer`. `run` checks the options and runs the loops; `rows` the row formats;
`outputs` the output folder and its files; `resume` the bookkeeping of an interrupted
run; `video` reading ahead and writing the annotated video; `worker` and `ray_backend`
the pipeline in other processes. Kept empty so `cli.py` can import `rows` cheaply."""
