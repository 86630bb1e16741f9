"""Deployment packages (`roadedge package ...`): the decoding Lambda's zip, the DeepLens project Lambda's zip and
model, and the Greengrass v2 component. Its own layer under the command line: it reads every other package's files
but runs none of them."""
