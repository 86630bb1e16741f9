"""Model updates with rollback: `backend.model` names an S3 prefix or a watched folder of model versions.

sources.py   where versions are published (s3://bucket/prefix/ or a local folder): list, download
store.py     the versions on this device (<state_dir>/models/<version>/), current and previous, rejected ones
verify.py    a downloaded version is checked before it runs: sha256, load + compile, a smoke inference, expectations
swap.py      the loop's side: a verified backend swapped in between two frames, on probation, rolled back
updater.py   the background thread that polls the source (or hears the shadow's desired version) and verifies
shadow.py    the AWS IoT device shadow (named shadow `roadedge`): desired model_version/thresholds, reported state
runtime.py   the composition: what edge.app calls when backend.model is an S3 prefix or a folder
"""
