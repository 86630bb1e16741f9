"""`roadedge serve`: a SageMaker-compatible inference server (model.py: the model and its answers, http.py: the
protocol, command.py: the command line)."""
