"""What segments a decoded frame: a local IR (the runtime's OpenVINO backend and the segmentation task's decoder) or
a SageMaker endpoint (invoke_endpoint, Accept image/png: the answer is the class-index PNG, as the built-in semantic
segmentation algorithm and `roadedge serve` give it). Both: segmenter(bgr) -> a SegmentationResult at the frame's size.

    segmenter.name, .source ("ir PATH" | "endpoint NAME"), .labels, .road_classes, .palette
"""


from roadedge.core.errors import RoadedgeError


class IrSegmenter(object):
    def __init__(self, path, road_classes=(), device="CPU"):
        from edge.backends import openvino
        from edge.plugins import checked, with_defaults
        from edge.tasks import segmentation

        self.backend = openvino.open(checked(openvino.OPTIONS, {"model": path, "device": device, "requests": 1},
                                             "--model"))
        model = self.backend.model
        if model.output_format not in segmentation.MASK_FORMATS:
            raise RoadedgeError("--model {}: output format {}; expected a segmentation model".format(
                path, model.output_format))
        settings = with_defaults(segmentation.OPTIONS, {"road_classes": list(road_classes)})
        self.decoder = segmentation.decoder(model, settings)
        self.name, self.source = model.name, "ir " + path
        self.labels = list(model.labels)
        self.road_classes = [self.labels[index] for index in segmentation.road_indices(model, settings)]
        self.palette = segmentation.model_palette(model)

    def __call__(self, bgr):
        from edge.processing.geometry import Resize

        raw = self.backend.infer(bgr)
        return self.decoder(raw, Resize((bgr.shape[1], bgr.shape[0]), self.backend.model.input_size))


class EndpointSegmenter(object):
    """The frame goes as a JPEG (quality 95); labels: --labels or the synthetic demo set."""

    def __init__(self, name, labels, road_classes=(), region="", endpoint_url="", quality=95):
        import boto3
        from botocore.config import Config

        from edge.processing.segmentation import MaskAnalysis
        from edge.tasks.segmentation import DEFAULT_ROAD_CLASSES, OPTIONS
        from roadedge.core.seglabels import voc_palette

        self.name, self.source, self.quality = name, "endpoint " + name, int(quality)
        self.labels = list(labels)
        unknown = [label for label in road_classes if label not in self.labels]
        if unknown:
            raise RoadedgeError("--road-classes: {}: not among the labels ({})".format(", ".join(unknown),
                                                                                    ", ".join(self.labels)))
        self.road_classes = list(road_classes) or [label for label in self.labels if label in DEFAULT_ROAD_CLASSES]
        self.palette = [tuple(colour) for colour in voc_palette(len(self.labels))]
        roads = [self.labels.index(label) for label in self.road_classes]
        self.analyse = MaskAnalysis(self.labels, self.palette, "segmentation_mask", roads,
                                    OPTIONS["free_band"].default, OPTIONS["free_min_fill"].default)
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        self.client = boto3.session.Session().client("sagemaker-runtime", region_name=region or None,
                                                     endpoint_url=endpoint_url or None, config=config)

    def __call__(self, bgr):
        import cv2
        from botocore.exceptions import BotoCoreError, ClientError

        from roadedge.core.seglabels import decode_index_png

        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        try:
            answer = self.client.invoke_endpoint(EndpointName=self.name, ContentType="image/jpeg", Accept="image/png",
                                                 Body=jpeg.tobytes())
            body = answer["Body"].read()
        except (BotoCoreError, ClientError) as err:
            raise RoadedgeError("--endpoint {}: {}".format(self.name, " ".join(str(err).split()))) from None
        try:
            mask = decode_index_png(body)
        except ValueError as err:
            raise RoadedgeError("--endpoint {}: the answer ({} bytes): {}".format(self.name, len(body), err)) from None
        if int(mask.max(initial=0)) >= len(self.labels):
            raise RoadedgeError("--endpoint {}: class {} in the mask; {} labels known (--labels)".format(
                self.name, int(mask.max()), len(self.labels)))
        return self.analyse(mask, (bgr.shape[1], bgr.shape[0]))
