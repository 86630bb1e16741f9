"""Stand-in for awsiot/greengrasscoreipc/model.py: the shapes PublishToIoTCore uses, and its errors."""


class QOS:
    """
    QOS enum
    """

    AT_MOST_ONCE = '0'
    AT_LEAST_ONCE = '1'


class PayloadFormat:
    BYTES = '0'
    UTF8 = '1'


class PublishToIoTCoreRequest:
    def __init__(self, *, topic_name=None, qos=None, payload=None, retain=None, user_properties=None,
                 message_expiry_interval_seconds=None, correlation_data=None, response_topic=None,
                 payload_format=None, content_type=None):
        self.topic_name = topic_name
        self.qos = qos
        self.payload = payload
        self.retain = retain
        self.user_properties = user_properties
        self.message_expiry_interval_seconds = message_expiry_interval_seconds
        self.correlation_data = correlation_data
        self.response_topic = response_topic
        self.payload_format = payload_format
        self.content_type = content_type


class PublishToIoTCoreResponse:
    pass


class GreengrassCoreIPCError(RuntimeError):
    """The base of the errors the nucleus answers an operation with."""

    def __init__(self, *, message=None):
        super().__init__(message)
        self.message = message


class ServiceError(GreengrassCoreIPCError):
    pass


class UnauthorizedError(GreengrassCoreIPCError):
    pass


class InvalidArgumentsError(GreengrassCoreIPCError):
    pass
