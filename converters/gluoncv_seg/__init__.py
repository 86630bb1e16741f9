"""SageMaker's built-in semantic segmentation (GluonCV FCN, PSPNet, DeepLabV3 on dilated ResNetV1b) -> OpenVINO.

artefact  model.tar.gz / folder: hyperparams.json + model_algo-1 (Gluon save_parameters)
layers    parameters by structural name, checked; Conv2D, BatchNorm, ReLU, pooling as OpenVINO ops
backbone  the dilated ResNetV1b read off the parameter names (stem, block kind, block counts, widths)
heads     fcn, psp, deeplab heads and the shared classifier
build     the native engine: artefact -> openvino.Model (logits, or the argmax mask)
gluon_net GluonCV's network in the MXNet environment: the reference forward pass and the mxnet engine's export
gluon_custom  (venv only) the same network on a backbone of its own, assembled from GluonCV's parts
optimize  `roadedge convert optimize` for segmentation artefacts
verify    `roadedge convert verify` for them: per-pixel argmax agreement and logit difference against GluonCV
"""
