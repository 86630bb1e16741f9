"""Stand-in for greengrasssdk/client.py: the client factory."""


def client(client_type, *args, **kwargs):
    if client_type == "lambda":
        from .Lambda import Client
    elif client_type == "iot-data":
        from .IoTDataPlane import Client
    else:  # secretsmanager and streammanager exist on the device; nothing here uses them
        raise Exception("Client type {} is not recognized.".format(repr(client_type)))
    return Client(*args, **kwargs)
