"""SageMaker's built-in semantic segmentation (GluonCV FCN, PSPNet, DeepLabV3 on dilated ResNetV1b) -> OpenVINO.

artefact  model.tar.gz / folder: hyperparams.json + model_algo-1 (Gluon save_parameters)
layers    parameters by structural name, checked; Conv2D, BatchNorm, ReLU, pooling as OpenVINO ops
backbone  the dilated ResNetV1b read off the parameter names (stem, block kind, block counts, widths)
heads     fcn, psp, deeplab heads and the shared classifier
build     the native engine: artefact -> openvino.Model (logits, or the argmax mask)
gluon_net runs inside the MXNet environment: GluonCV builds the network (forward, export for the mxnet engine)
optimize  `roadedge convert optimize` for segmentation artefacts; verify: `roadedge convert verify` for them
"""
