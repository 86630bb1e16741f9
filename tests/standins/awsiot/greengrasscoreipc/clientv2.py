"""Stand-in for awsiot/greengrasscoreipc/clientv2.py: GreengrassCoreIPCClientV2, PublishToIoTCore only.

Signatures as in the SDK: keyword-only arguments, so an unknown or positional argument is a TypeError.
"""
import concurrent.futures

from awsiot.greengrasscoreipc import model


class GreengrassCoreIPCClientV2:
    def __init__(self, client=None, executor=True):
        if client is None:
            import awsiot.greengrasscoreipc

            client = awsiot.greengrasscoreipc.connect()
        self.client = client
        if executor is True:
            executor = concurrent.futures.ThreadPoolExecutor()
        self.executor = executor
        self.ignore_executor_exceptions = False

    def close(self, *, executor_wait=True):
        future = self.client.close()
        self.ignore_executor_exceptions = True
        if self.executor is not None:
            self.executor.shutdown(wait=executor_wait)
        return future

    def publish_to_iot_core(self, *, topic_name=None, qos=None, payload=None, retain=None, user_properties=None,
                            message_expiry_interval_seconds=None, correlation_data=None, response_topic=None,
                            payload_format=None, content_type=None):
        return self.publish_to_iot_core_async(
            topic_name=topic_name, qos=qos, payload=payload, retain=retain, user_properties=user_properties,
            message_expiry_interval_seconds=message_expiry_interval_seconds, correlation_data=correlation_data,
            response_topic=response_topic, payload_format=payload_format, content_type=content_type).result()

    def publish_to_iot_core_async(self, *, topic_name=None, qos=None, payload=None, retain=None,
                                  user_properties=None, message_expiry_interval_seconds=None, correlation_data=None,
                                  response_topic=None, payload_format=None, content_type=None):
        request = model.PublishToIoTCoreRequest(
            topic_name=topic_name, qos=qos, payload=payload, retain=retain, user_properties=user_properties,
            message_expiry_interval_seconds=message_expiry_interval_seconds, correlation_data=correlation_data,
            response_topic=response_topic, payload_format=payload_format, content_type=content_type)
        return self.client.publish_to_iot_core(request)
