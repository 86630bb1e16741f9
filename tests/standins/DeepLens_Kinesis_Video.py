"""Stand-in for the DeepLens device's `DeepLens_Kinesis_Video` module, with exactly its API (AWS's DeepLens + Kinesis
Video samples): the device streams its own camera; a Lambda only starts and stops it.

    producer = DeepLens_Kinesis_Video.createProducer(access_key, secret_key, session_token, region)
    stream = producer.createStream(stream_name, retention_hours)
    stream.start(); stream.stop(); stream.isActive

Every call is recorded in `calls`; reset() clears them. `fail_start` makes start() raise as the device's does when
its credentials are refused.
"""
calls = []
streams = []
fail_start = None


def reset():
    global fail_start
    del calls[:]
    del streams[:]
    fail_start = None


class Stream(object):
    def __init__(self, producer, name, retention_hours):
        self.producer, self.name, self.retention_hours = producer, name, retention_hours
        self.isActive = False

    def start(self):
        calls.append(("start", self.name))
        if fail_start is not None:
            raise fail_start
        self.isActive = True

    def stop(self):
        calls.append(("stop", self.name))
        self.isActive = False


class Producer(object):
    def __init__(self, access_key, secret_key, session_token, region):
        self.access_key, self.secret_key, self.session_token, self.region = access_key, secret_key, session_token, region

    def createStream(self, name, retention_hours):  # noqa: N802 - the device module's name
        if not isinstance(name, str) or not isinstance(retention_hours, int):
            raise TypeError("createStream(str name, int retention_hours)")
        calls.append(("createStream", name, retention_hours))
        stream = Stream(self, name, retention_hours)
        streams.append(stream)
        return stream


def createProducer(access_key, secret_key, session_token, region):  # noqa: N802 - the device module's name
    for value in (access_key, secret_key, session_token, region):
        if not isinstance(value, str):
            raise TypeError("createProducer takes four strings")
    calls.append(("createProducer", access_key, region, bool(session_token)))
    return Producer(access_key, secret_key, session_token, region)
