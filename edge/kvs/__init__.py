"""The Kinesis Video producer's parts."""
