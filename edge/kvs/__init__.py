"""The Kinesis Video Streams producer's parts (PutMedia takes one MKV stream: a header, then one Cluster per fragment).

- `edge.kvs.mkv`: pure MKV/EBML writing (header, clusters) and H.264 Annex-B -> AVCC framing; no I/O, no av.
- `edge.kvs.encoder`: H.264 encoding of BGR frames with PyAV's libx264 (av imported lazily, so mkv works without it).
- `edge.kvs.event_windows`: events mode: which fragments overlap a damage event's pre- and post-roll.
- `edge.kvs.store`: the on-disk fragment store (SQLite): a fragment leaves it only when the service has it.
- `edge.kvs.acks`: PutMedia's acknowledgements (newline-separated JSON, any split) read into Ack records.
- `edge.kvs.producer`: the Python producer: frames -> fragments in the store -> PutMedia, resent until PERSISTED.
- `edge.kvs.putmedia`: one PutMedia connection: signed headers, a chunked MKV upload, acks read while it goes on.
- `edge.kvs.kvssink_producer`: the kvssink alternative: frames piped into a gst-launch-1.0 ... ! kvssink pipeline.
- `edge.kvs.control`: the control plane (the stream, its PutMedia data endpoint) through boto3's kinesisvideo client.
- `edge.kvs.iot_credentials`: temporary AWS credentials for a device's X.509 certificate (AWS IoT credentials provider).
- `edge.kvs.deeplens_producer`: the DeepLens device's own producer (DeepLens_Kinesis_Video), started and stopped.
"""
