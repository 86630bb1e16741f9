"""Dataset and model conversion: VOC XML -> SageMaker, S3 upload, segmentation layout, MXNet -> OpenVINO."""
