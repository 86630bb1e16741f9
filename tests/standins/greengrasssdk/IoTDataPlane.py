"""Stand-in for greengrasssdk/IoTDataPlane.py: publish() builds the router invocation the way the SDK does."""
import base64
import json

from greengrasssdk import Lambda

ROUTER_FUNCTION_ARN = "arn:aws:lambda:::function:GGRouter"
MY_FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:roadedge-standin:1"


class ShadowError(Exception):
    pass


class Client:
    def __init__(self):
        self.lambda_client = Lambda.Client()

    def publish(self, **kwargs):
        topic = self._get_required_parameter("topic", **kwargs)
        payload = kwargs.get("payload", b"")
        queue_full_policy = kwargs.get("queueFullPolicy", "")
        client_context = {"custom": {"source": MY_FUNCTION_ARN, "subject": topic}}
        if queue_full_policy == "AllOrException":
            client_context["custom"]["queueFullPolicy"] = "AllOrError"
        elif queue_full_policy in ("BestEffort", ""):
            client_context["custom"]["queueFullPolicy"] = queue_full_policy
        else:
            raise ValueError("Invalid value for queueFullPolicy: {queueFullPolicy}".format(
                queueFullPolicy=queue_full_policy))
        self.lambda_client._invoke_internal(ROUTER_FUNCTION_ARN, payload,
                                            base64.b64encode(json.dumps(client_context).encode()), "Event")

    def _get_required_parameter(self, parameter_name, **kwargs):
        if parameter_name not in kwargs:
            raise ValueError('Parameter "{parameter_name}" is a required parameter but was not provided.'.format(
                parameter_name=parameter_name))
        return kwargs[parameter_name]
